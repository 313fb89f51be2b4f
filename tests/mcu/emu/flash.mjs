// The Pico's 2 MB QSPI flash: firmware files (.bin, .uf2, .elf) and saved flash images, the
// flash chip's SPI commands as the boot ROM and the SDK send them through the SSI, and the
// boot ROM's flash_range_erase/flash_range_program replaced by a breakpoint (gap 1 of
// docs/mcu-emulation.md).

import fs from 'node:fs';
import path from 'node:path';

import { BasePeripheral } from './rp2040js.mjs';

export const FLASH_SIZE = 2 * 1024 * 1024;
export const XIP_BASE = 0x10000000;
const SECTOR = 4096;
const PAGE = 256;

// ---------------------------------------------------------------------------------------------
// Files

const UF2_MAGIC0 = 0x0a324655;
const UF2_MAGIC1 = 0x9e5d5157;
const UF2_MAGIC_END = 0x0ab16f30;
const UF2_FLAG_NOT_MAIN_FLASH = 0x00000001;
const UF2_FLAG_FAMILY = 0x00002000;
const UF2_FAMILY_RP2040 = 0xe48bff56;

// A firmware file as the pieces it writes into flash: [{offset, data}]. A .bin is a raw image
// from offset 0; a .uf2 is 512-byte blocks of up to 476 payload bytes at a flash address; an
// .elf contributes its PT_LOAD segments at their load (physical) addresses.
export function readFirmware(file) {
  const bytes = fs.readFileSync(file);
  const ext = path.extname(file).toLowerCase();
  let pieces;
  if (ext === '.uf2') pieces = parseUf2(bytes, file);
  else if (ext === '.elf' || (bytes.length > 4 && bytes.readUInt32BE(0) === 0x7f454c46)) pieces = parseElf(bytes, file);
  else if (ext === '.bin' || ext === '.img') pieces = [{ offset: 0, data: bytes }];
  else throw new Error(`${file}: unknown firmware format (allowed: .bin, .uf2, .elf)`);
  for (const p of pieces) {
    if (p.offset < 0 || p.offset + p.data.length > FLASH_SIZE) {
      throw new Error(`${file}: data at flash offset 0x${p.offset.toString(16)} lies outside the 2 MB flash`);
    }
  }
  if (!pieces.length) throw new Error(`${file}: no data for the flash`);
  return pieces;
}

function parseUf2(bytes, file) {
  if (bytes.length % 512) throw new Error(`${file}: a UF2 file is a whole number of 512-byte blocks`);
  const pieces = [];
  for (let at = 0; at < bytes.length; at += 512) {
    const b = bytes.subarray(at, at + 512);
    if (b.readUInt32LE(0) !== UF2_MAGIC0 || b.readUInt32LE(4) !== UF2_MAGIC1 || b.readUInt32LE(508) !== UF2_MAGIC_END) {
      throw new Error(`${file}: block ${at / 512} is not a UF2 block`);
    }
    const flags = b.readUInt32LE(8);
    if (flags & UF2_FLAG_NOT_MAIN_FLASH) continue;
    if (flags & UF2_FLAG_FAMILY && b.readUInt32LE(28) !== UF2_FAMILY_RP2040) continue;
    const addr = b.readUInt32LE(12);
    const size = b.readUInt32LE(16);
    if (size > 476) throw new Error(`${file}: block ${at / 512} claims ${size} payload bytes (at most 476)`);
    pieces.push({ offset: addr - XIP_BASE, data: Buffer.from(b.subarray(32, 32 + size)) });
  }
  return pieces;
}

function parseElf(bytes, file) {
  if (bytes.readUInt32BE(0) !== 0x7f454c46 || bytes[4] !== 1 || bytes[5] !== 1) {
    throw new Error(`${file}: not a 32-bit little-endian ELF file`);
  }
  const phoff = bytes.readUInt32LE(28);
  const phentsize = bytes.readUInt16LE(42);
  const phnum = bytes.readUInt16LE(44);
  const pieces = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    const type = bytes.readUInt32LE(ph);
    const offset = bytes.readUInt32LE(ph + 4);
    const paddr = bytes.readUInt32LE(ph + 12);
    const filesz = bytes.readUInt32LE(ph + 16);
    if (type !== 1 || !filesz) continue; // PT_LOAD with file data
    if (paddr < XIP_BASE || paddr >= XIP_BASE + FLASH_SIZE) continue; // RAM-only segments
    pieces.push({ offset: paddr - XIP_BASE, data: bytes.subarray(offset, offset + filesz) });
  }
  return pieces;
}

// A saved flash image: the whole 2 MB, byte for byte.
export function readFlashImage(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.length !== FLASH_SIZE) {
    throw new Error(`${file}: a flash image is exactly ${FLASH_SIZE} bytes, this one has ${bytes.length}`);
  }
  return bytes;
}

// Writes through a temporary file and a rename, so a reader never sees half an image.
export function writeFlashImage(file, flash) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, flash.subarray(0, FLASH_SIZE));
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------------------------
// The flash chip (a W25Q16JV as on the Pico) behind the SSI in standard SPI mode

const JEDEC_ID = [0xef, 0x40, 0x15];

// One SPI transaction per chip-select low period: the first byte is the command, the chip
// answers each byte clocked in with one byte clocked out. Program and erase need a write
// enable first (WEL), program ANDs bytes into the page (NOR flash can only clear bits) and
// wraps within the 256-byte page, erase sets a sector/block to 0xFF when chip select rises.
export class SpiFlash {
  constructor(mem, uniqueId) {
    this.mem = mem;
    this.uniqueId = uniqueId;
    this.wel = false;
    this.selected = false;
    this.bytes = [];
    this.pendingErase = null;
  }

  select() {
    this.selected = true;
    this.bytes = [];
  }

  deselect() {
    if (this.pendingErase) {
      const [start, size] = this.pendingErase;
      this.mem.fill(0xff, start, start + size);
      this.pendingErase = null;
    }
    if (this.bytes.length && [0x02, 0x20, 0x52, 0xd8, 0xc7, 0x60, 0x01, 0x31].includes(this.bytes[0])) this.wel = false;
    this.selected = false;
    this.bytes = [];
  }

  address(b) {
    return ((b[1] << 16) | (b[2] << 8) | b[3]) & (FLASH_SIZE - 1);
  }

  transfer(value) {
    const b = this.bytes;
    b.push(value);
    const n = b.length - 1; // index of this byte in the transaction
    const cmd = b[0];
    switch (cmd) {
      case 0x03: // read data: 3 address bytes, then data
        return n >= 4 ? this.mem[(this.address(b) + n - 4) & (FLASH_SIZE - 1)] : 0xff;
      case 0x0b: // fast read: 3 address bytes, 1 dummy, then data
        return n >= 5 ? this.mem[(this.address(b) + n - 5) & (FLASH_SIZE - 1)] : 0xff;
      case 0x05: // status register 1: BUSY is never set (operations complete at once), WEL
        return n >= 1 ? (this.wel ? 0x02 : 0x00) : 0xff;
      case 0x35: // status register 2: QE set, as the Pico's boot2 leaves it
        return n >= 1 ? 0x02 : 0xff;
      case 0x15: // status register 3
        return n >= 1 ? 0x00 : 0xff;
      case 0x9f: // JEDEC id
        return n >= 1 && n <= 3 ? JEDEC_ID[n - 1] : 0xff;
      case 0x4b: // unique id: 4 dummy bytes, then 8 id bytes
        return n >= 5 && n <= 12 ? this.uniqueId[n - 5] : 0xff;
      case 0xab: // release power-down / device id
        return n >= 4 ? 0x14 : 0xff;
      case 0x90: // manufacturer / device id
        return n >= 4 ? [0xef, 0x14][(n - 4) & 1] : 0xff;
      case 0x06:
        if (n === 0) this.wel = true;
        return 0xff;
      case 0x04:
        if (n === 0) this.wel = false;
        return 0xff;
      case 0x02: // page program
        if (n >= 4 && this.wel) {
          const a = this.address(b);
          const at = (a & ~(PAGE - 1)) | ((a + n - 4) & (PAGE - 1));
          this.mem[at] &= value;
        }
        return 0xff;
      case 0x20: // 4 KB sector erase
      case 0x52: // 32 KB block erase
      case 0xd8: // 64 KB block erase
        if (n === 3 && this.wel) {
          const size = cmd === 0x20 ? SECTOR : cmd === 0x52 ? 32768 : 65536;
          this.pendingErase = [this.address(b) & ~(size - 1), size];
        }
        return 0xff;
      case 0xc7:
      case 0x60: // chip erase
        if (n === 0 && this.wel) this.pendingErase = [0, FLASH_SIZE];
        return 0xff;
      default: // 0xff (continuous read reset), write status, unknown commands: no answer
        return 0xff;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// IO_QSPI: the QSPI pins' control registers. Only the chip select matters here: the ROM and the
// SDK force it low/high through GPIO_QSPI_SS_CTRL.OUTOVER around a command (flash_cs_force), and
// the ROM samples it as an input to see whether BOOTSEL is held (it never is here).

const QSPI_SS_CTRL = 0x0c;
const QSPI_PINS = 6;

export class IoQspi extends BasePeripheral {
  constructor(rp2040, name, ssi) {
    super(rp2040, name);
    this.ssi = ssi;
    this.ctrl = new Uint32Array(QSPI_PINS);
    this.intRegs = new Map();
    this.updateSs();
  }

  // 0: normal (the SSI drives chip select), 2: forced low, 3: forced high
  get ssOutover() {
    return (this.ctrl[1] >> 8) & 3;
  }

  updateSs() {
    const pin = this.rp2040.qspi[1];
    pin.ctrl = this.ctrl[1];
    // The pad is pulled up (BOOTSEL not pressed) unless the chip drives it low.
    pin.setInputValue(this.ssOutover !== 2);
    this.ssi.chipSelectForced(this.ssOutover);
  }

  readUint32(offset) {
    if (offset < QSPI_PINS * 8) {
      const pin = offset >> 3;
      if (offset & 4) return this.ctrl[pin];
      // STATUS: report the input from the pad as the pin model has it
      return this.rp2040.qspi[pin].inputValue ? 1 << 17 : 0;
    }
    return this.intRegs.get(offset) || 0;
  }

  writeUint32(offset, value) {
    if (offset < QSPI_PINS * 8) {
      if (offset & 4) {
        const pin = offset >> 3;
        this.ctrl[pin] = value;
        if (pin === 1) this.updateSs();
      }
      return;
    }
    this.intRegs.set(offset, value);
  }
}

// ---------------------------------------------------------------------------------------------
// SSI: the Synopsys SPI controller in front of the flash. Execute-in-place reads go straight
// to the flash array (rp2040js maps it), so only DR0 traffic in standard SPI mode is modelled:
// every frame written is exchanged with the flash at once and the answer lands in the RX FIFO,
// so the controller is never busy and its TX FIFO is always empty. A transaction (chip select
// low) lasts while OUTOVER forces it low; with the SSI driving chip select itself, consecutive
// DR0 writes form one transaction, which ends when the software reads back (status or data):
// the ROM and boot2 always wait for the FIFO to drain between commands.

const SSI_CTRLR0 = 0x00;
const SSI_CTRLR1 = 0x04;
const SSI_SSIENR = 0x08;
const SSI_TXFLR = 0x20;
const SSI_RXFLR = 0x24;
const SSI_SR = 0x28;
const SSI_ICR = 0x48;
const SSI_IDR = 0x58;
const SSI_VERSION_ID = 0x5c;
const SSI_DR0 = 0x60;
const SR_TFNF = 1 << 1;
const SR_TFE = 1 << 2;
const SR_RFNE = 1 << 3;
const SR_RFF = 1 << 4;
const RX_DEPTH = 16;

export class Ssi extends BasePeripheral {
  constructor(rp2040, name, chip) {
    super(rp2040, name);
    this.chip = chip;
    this.regs = new Map([[SSI_CTRLR0, 0x70000], [SSI_SSIENR, 0]]);
    this.rx = [];
    this.forced = 0;
    this.autoOpen = false; // an SSI-driven transaction in progress
  }

  get standardSpi() {
    const ctrlr0 = this.regs.get(SSI_CTRLR0) || 0;
    return ((ctrlr0 >> 21) & 3) === 0; // SPI_FRF: 0 standard, 1 dual, 2 quad
  }

  get frameBytes() {
    const ctrlr0 = this.regs.get(SSI_CTRLR0) || 0;
    return (((ctrlr0 >> 16) & 0x1f) + 1) >> 3 || 1; // DFS_32 + 1 bits per frame
  }

  chipSelectForced(outover) {
    const wasLow = this.forced === 2;
    this.forced = outover;
    this.endAuto();
    if (outover === 2 && !wasLow) this.chip.select();
    if (outover !== 2 && wasLow) this.chip.deselect();
  }

  endAuto() {
    if (this.autoOpen) {
      this.chip.deselect();
      this.autoOpen = false;
    }
  }

  exchange(value) {
    let answer = 0xff;
    if (this.forced === 2) {
      answer = this.transferFrame(value);
    } else if (this.forced === 0) {
      if (!this.autoOpen) {
        this.chip.select();
        this.autoOpen = true;
      }
      answer = this.transferFrame(value);
    }
    if (this.rx.length < RX_DEPTH) this.rx.push(answer);
  }

  transferFrame(value) {
    const n = this.frameBytes;
    let answer = 0;
    for (let i = n - 1; i >= 0; i--) answer = (answer << 8) | this.chip.transfer((value >>> (8 * i)) & 0xff);
    return answer >>> 0;
  }

  readUint32(offset) {
    switch (offset) {
      case SSI_DR0:
        this.endAuto();
        return this.rx.length ? this.rx.shift() : 0;
      case SSI_SR:
        this.endAuto();
        return SR_TFNF | SR_TFE | (this.rx.length ? SR_RFNE : 0) | (this.rx.length >= RX_DEPTH ? SR_RFF : 0);
      case SSI_TXFLR:
        return 0;
      case SSI_RXFLR:
        this.endAuto();
        return this.rx.length;
      case SSI_ICR:
        return 0;
      case SSI_IDR:
        return 0x51535049;
      case SSI_VERSION_ID:
        return 0x3430312a;
      default:
        return this.regs.get(offset) || 0;
    }
  }

  writeUint32(offset, value) {
    switch (offset) {
      case SSI_DR0:
        if (this.standardSpi) this.exchange(value);
        return;
      case SSI_SSIENR:
        if (!(value & 1)) {
          // disabling the SSI empties its FIFOs
          this.rx = [];
          this.endAuto();
        }
        this.regs.set(offset, value);
        return;
      default:
        this.regs.set(offset, value);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The boot ROM's function table: pairs of (two-letter code, 16-bit address) from the pointer at
// ROM offset 0x14, ending with a zero code.

export function romFunctions(romBytes) {
  const table = romBytes[0x14] | (romBytes[0x15] << 8);
  const funcs = new Map();
  for (let at = table; at + 4 <= romBytes.length; at += 4) {
    const code = romBytes[at] | (romBytes[at + 1] << 8);
    if (!code) break;
    funcs.set(String.fromCharCode(code & 0xff, code >> 8), romBytes[at + 2] | (romBytes[at + 3] << 8));
  }
  return funcs;
}

// Replaces ROM routines by "BKPT #imm": hooks maps a code ("RE") to a function(core) that does
// the routine's work; the breakpoint handler then returns to the caller (PC = LR), as the
// routine would. Returns the patched ROM and a map from breakpoint address to hook.
export function patchRom(romBytes, hooks) {
  const rom = Buffer.from(romBytes);
  const funcs = romFunctions(rom);
  const byAddress = new Map();
  let imm = 0x40;
  for (const [code, hook] of Object.entries(hooks)) {
    const addr = funcs.get(code);
    if (addr === undefined) throw new Error(`boot ROM has no function ${code} in its table`);
    const at = addr & ~1;
    rom.writeUInt16LE(0xbe00 | imm++, at); // BKPT #imm
    byAddress.set(at, hook);
  }
  return { rom, byAddress };
}

// The work of flash_range_erase(addr, count, block_size, block_cmd): the ROM erases whole 4 KB
// sectors (or bigger blocks where aligned), so the range is widened to sector boundaries.
export function eraseRange(mem, addr, count) {
  const start = Math.floor(addr / SECTOR) * SECTOR;
  const end = Math.ceil((addr + count) / SECTOR) * SECTOR;
  for (let a = start; a < end; a += SECTOR) mem.fill(0xff, a & (FLASH_SIZE - 1), (a & (FLASH_SIZE - 1)) + SECTOR);
}

// The work of flash_range_program(addr, data, count): NOR flash programming clears bits only.
export function programRange(mem, addr, count, readByte) {
  for (let i = 0; i < count; i++) mem[(addr + i) & (FLASH_SIZE - 1)] &= readByte(i);
}
