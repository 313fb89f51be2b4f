// One emulated Raspberry Pi Pico: an rp2040js RP2040 with the runner's models in place of the
// parts rp2040js lacks, its flash kept across reboots, and the loop that runs it in simulated
// time.
//
// Time: every boot has its own rp2040js clock (the chip's timer starts at 0 as after a reset);
// `now()` is the global simulated time in ns, continuous across boots, used by every trace.
// Instructions advance the clock by their cycles at clk_sys; while the core sleeps in WFI/WFE
// the clock jumps to the next alarm. Simulated time may run ahead of wall-clock time only by a
// small credit (pace): a sleeping chip waits in real time like a real one, so host timeouts and
// device timeouts keep their meaning, and an idle board costs no CPU. A busy chip runs as fast
// as the emulator can, which is slower than real time.

import { performance } from 'node:perf_hooks';

import { RP2040, SimulationClock, BasePeripheral, IRQ } from './rp2040js.mjs';
import { FLASH_SIZE, SpiFlash, Ssi, IoQspi, patchRom, eraseRange, programRange, writeFlashImage } from './flash.mjs';
import { PL011 } from './pl011.mjs';

const MEMORY_WINDOW = 16 * 1024 * 1024; // rp2040js maps a 16 MB flash window
const SLICE_MS = 15; // wall time per run slice before the event loop gets a turn
const PACE_MAX_NS = 30e6; // simulated time the chip may bank while it runs slower than real time
const SLEEP_MAX_MS = 20;
const SRAM_BASE = 0x20000000;
const RESET_UART0 = 1 << 22;
const RESET_UART1 = 1 << 23;

// VREG_AND_CHIP_RESET: CHIP_RESET says why the chip started. The ROM halts when it reads
// "restarted by the debugger" (rp2040js answers 0xffffffff for this unmodelled block).
class ChipReset extends BasePeripheral {
  constructor(rp2040, name, powerOn) {
    super(rp2040, name);
    this.regs = [0xb1, 0x91, powerOn ? 0x100 : 0]; // VREG, BOD, CHIP_RESET (HAD_POR)
  }

  readUint32(offset) {
    return this.regs[offset >> 2] ?? 0;
  }

  writeUint32(offset, value) {
    if (offset < 8) this.regs[offset >> 2] = value;
  }
}

// XIP_CTRL: cache control. There is no cache model; a flush is done at once.
class XipCtrl extends BasePeripheral {
  constructor(rp2040, name) {
    super(rp2040, name);
    this.ctrl = 3;
  }

  readUint32(offset) {
    if (offset === 0) return this.ctrl;
    if (offset === 4) return 1; // FLUSH: done
    if (offset === 8) return 3; // STAT: FIFO empty, flush ready
    return 0;
  }

  writeUint32(offset, value) {
    if (offset === 0) this.ctrl = value;
  }
}

// Warnings from rp2040js (unimplemented registers) counted, the first of each kind shown.
class Logger {
  constructor(verbose) {
    this.verbose = verbose;
    this.counts = new Map();
  }

  debug() {}

  info() {}

  warn(component, message) {
    const key = `${component}: ${message}`;
    const n = (this.counts.get(key) || 0) + 1;
    this.counts.set(key, n);
    if (this.verbose && n === 1) process.stderr.write(`pico: rp2040js warning: ${key}\n`);
  }

  error(component, message) {
    process.stderr.write(`pico: rp2040js error: ${component}: ${message}\n`);
  }
}

export class Board {
  constructor({ rom, flash, uniqueId, line, cdc, pads, speed = 1, verbose = false, onReboot = null }) {
    this.flash = new Uint8Array(MEMORY_WINDOW).fill(0xff);
    this.flash.set(flash.subarray(0, FLASH_SIZE));
    this.uniqueId = uniqueId;
    this.line = line;
    this.cdc = cdc;
    this.pads = pads;
    this.speed = speed;
    this.onReboot = onReboot;
    this.logger = new Logger(verbose);
    const patched = patchRom(rom, {
      RE: (core) => {
        this.flashOps.erase_calls += 1;
        this.flashOps.erased_bytes += core.registers[1];
        eraseRange(this.flash, core.registers[0], core.registers[1]);
        this.flashTime(this.flashTiming.erase_ns * Math.ceil(core.registers[1] / 4096), true);
      },
      RP: (core) => {
        const [addr, data, count] = core.registers;
        this.flashOps.program_calls += 1;
        this.flashOps.programmed_bytes += count;
        programRange(this.flash, addr, count, (i) => this.mcu.readUint8(data + i));
        this.flashTime(this.flashTiming.page_ns * Math.ceil(count / 256), false);
      },
    });
    this.rom = new Uint32Array(patched.rom.buffer, patched.rom.byteOffset, patched.rom.length / 4);
    this.romHooks = patched.byAddress;
    // Calls of the ROM's flash_range_erase/program (each one runs with interrupts off on the
    // chip: rp2_flash.c) and their sizes, since the runner started.
    this.flashOps = { erase_calls: 0, erased_bytes: 0, program_calls: 0, programmed_bytes: 0 };
    // Simulated time a call takes (0: none, the default), and bytes the host puts on the UART
    // line as the next erase starts (the control command flash_timing).
    this.flashTiming = { erase_ns: 0, page_ns: 0, inject: null };
    this.epoch = 0;
    this.boots = 0;
    this.halted = null;
    this.stopped = true;
    this.timer = null;
    this.totals = { instructions: 0, busy_ns: 0, wait_ns: 0, cycles: 0 };
    this.wallStart = performance.now();
    this.budget = 0; // simulated ns the chip may still advance (pace)
    this.budgetWall = this.wallStart;
    this.boot('power');
  }

  now() {
    return this.epoch + this.clock.nanos;
  }

  // --- boot -----------------------------------------------------------------------------------

  boot(kind) {
    const old = this.mcu;
    if (old) {
      this.totals.cycles += old.core.cycles;
      this.epoch += this.clock.nanos;
      this.line.detach();
      this.cdc.detach();
      this.pads.detach();
    }
    const clock = new SimulationClock();
    const mcu = new RP2040(clock);
    mcu.logger = this.logger;
    mcu.loadBootrom(this.rom);
    // The persistent flash replaces the per-instance array the constructor made.
    mcu.flash = this.flash;
    mcu.flash16 = new Uint16Array(this.flash.buffer);
    mcu.flashView = new DataView(this.flash.buffer);

    const chip = new SpiFlash(this.flash, this.uniqueId);
    const ssi = new Ssi(mcu, 'SSI', chip);
    for (const pin of mcu.qspi) pin.padValue |= 0x40; // input enabled, as the QSPI pads come out of reset
    mcu.peripherals[0x18000] = ssi;
    mcu.peripherals[0x40018] = new IoQspi(mcu, 'IO_QSPI', ssi);
    mcu.peripherals[0x40064] = new ChipReset(mcu, 'VREG_AND_CHIP_RESET', kind === 'power');
    mcu.peripherals[0x14000] = new XipCtrl(mcu, 'XIP_CTRL');
    this.installScr(mcu);
    this.fastSramWrites(mcu);

    const hooks = {
      onTxStart: (f) => this.line.onTxStart(f),
      onTxEnd: (f, idle) => this.line.onTxEnd(f, idle),
      onReset: () => this.line.uart && this.line.tryStart(),
    };
    mcu.uart = [
      new PL011(mcu, 'UART0', IRQ.UART0, { rx: 21, tx: 20 }, clock, hooks),
      new PL011(mcu, 'UART1', IRQ.UART1, { rx: 23, tx: 22 }, clock),
    ];
    mcu.peripherals[0x40034] = mcu.uart[0];
    mcu.peripherals[0x40038] = mcu.uart[1];
    this.hookResets(mcu);

    const watchdog = mcu.peripherals[0x40058];
    if (kind === 'watchdog' && old) {
      // A watchdog reboot keeps the watchdog's scratch registers and its reason.
      const was = old.peripherals[0x40058];
      watchdog.scratchData.set(was.scratchData);
      watchdog.reason = was.reason;
    }
    watchdog.onWatchdogTrigger = () => {
      // The chip resets here. rp2040js' watchdog would fire again and again (its periodic
      // alarm reschedules itself); stop it, the loop reboots the chip after this instruction.
      this.rebootPending = 'watchdog';
      watchdog.alarm.enable = false;
      watchdog.timer.enable = false;
    };
    mcu.onBreak = (imm) => this.breakpoint(imm);

    this.mcu = mcu;
    this.clock = clock;
    this.rebootPending = null;
    this.halted = null;
    this.boots++;
    this.line.attach(mcu.uart[0], clock, this.epoch);
    this.cdc.attach(mcu.usbCtrl, clock);
    this.pads.attach(mcu);
    if (old) this.onReboot?.(kind);
  }

  // SCB->SCR (0xe000ed10): rp2040js does not keep it; the firmware sets SEVONPEND there.
  installScr(mcu) {
    const ppb = mcu.ppb;
    const read = ppb.readUint32.bind(ppb);
    const write = ppb.writeUint32.bind(ppb);
    let scr = 0;
    ppb.readUint32 = (offset) => (offset === 0xd10 ? scr : read(offset));
    ppb.writeUint32 = (offset, value) => {
      if (offset === 0xd10) scr = value & 0x16;
      else write(offset, value);
    };
  }

  // rp2040js looks for a peripheral before it looks at SRAM on every 32-bit store; stores to
  // SRAM (most of them) take the short way here.
  fastSramWrites(mcu) {
    const write = mcu.writeUint32.bind(mcu);
    const view = mcu.sramView;
    const end = SRAM_BASE + mcu.sram.length - 3;
    mcu.writeUint32 = (address, value) => {
      if (address >= SRAM_BASE && address < end) view.setUint32(address - SRAM_BASE, value, true);
      else write(address, value);
    };
  }

  // uart_init() holds the UART in reset through the RESETS block: that empties it.
  hookResets(mcu) {
    const resets = mcu.peripherals[0x4000c];
    const write = resets.writeUint32.bind(resets);
    resets.writeUint32 = (offset, value) => {
      const before = resets.reset;
      write(offset, value);
      if (offset === 0) {
        const asserted = resets.reset & ~before;
        if (asserted & RESET_UART0) mcu.uart[0].reset();
        if (asserted & RESET_UART1) mcu.uart[1].reset();
      }
    };
  }

  breakpoint(imm) {
    const core = this.mcu.core;
    const at = (core.PC - 2) >>> 0;
    const hook = this.romHooks.get(at);
    if (hook) {
      hook(core);
      core.PC = core.LR & ~1; // return from the ROM routine
      return;
    }
    // No debugger is attached: on the chip this is a HardFault that MicroPython cannot report.
    this.halted = `breakpoint #${imm} at 0x${at.toString(16)}`;
    process.stderr.write(`pico: the core stopped at a ${this.halted}\n`);
  }

  // Power cycle: the chip starts from the ROM with the flash as it is.
  powerCycle() {
    this.boot('power');
    this.wake();
  }

  saveFlash(file) {
    writeFlashImage(file, this.flash);
  }

  // --- running --------------------------------------------------------------------------------

  start() {
    this.stopped = false;
    this.wake();
  }

  stop() {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  // Something from outside needs the chip: run now instead of at the next paced slice.
  wake() {
    if (this.stopped || this.immediate) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.immediate = setImmediate(() => {
      this.immediate = null;
      this.runSlice();
    });
  }

  // The simulated time (local to the boot) the chip may reach now: each wall-clock ms adds
  // one simulated ms (times speed) to a budget the chip spends by running, capped so that a
  // chip slower than real time cannot bank a large jump for later.
  paceLimit(wallNow) {
    if (!this.speed) return Infinity;
    this.budget = Math.min(PACE_MAX_NS, this.budget + (wallNow - this.budgetWall) * 1e6 * this.speed);
    this.budgetWall = wallNow;
    return this.clock.nanos + this.budget;
  }

  runSlice() {
    if (this.stopped) return;
    const wallStart = performance.now();
    let sleepMs = 0;
    if (!this.halted) sleepMs = this.execute(wallStart);
    if (this.rebootPending) {
      const kind = this.rebootPending;
      this.boot(kind);
      sleepMs = 0;
    }
    this.afterSlice?.();
    if (this.stopped) return;
    if (this.halted) sleepMs = SLEEP_MAX_MS;
    if (sleepMs > 0) this.timer = setTimeout(() => {
      this.timer = null;
      this.runSlice();
    }, sleepMs);
    else this.wake();
  }

  // Runs instructions for up to SLICE_MS of wall time. Returns 0 to continue at once, or how
  // long to sleep (ms) when the chip waits for an alarm further away than the pace allows.
  execute(wallStart) {
    const core = this.mcu.core;
    const clock = this.clock;
    const nsPerCycle = 1e9 / this.mcu.clkSys;
    const limit = this.paceLimit(wallStart);
    const startNanos = clock.nanos;
    let instructions = 0;
    let busy = 0;
    let wait = 0;
    let sleepMs = 0;
    outer: for (;;) {
      for (let i = 0; i < 4096; i++) {
        if (core.waiting) {
          const next = clock.nextAlarm;
          const target = next ? next.nanos : Infinity;
          if (target > limit) {
            // Nothing to do before the pace limit: let wall time catch up.
            if (limit !== Infinity && limit > clock.nanos) {
              wait += limit - clock.nanos;
              clock.tick(limit - clock.nanos);
            }
            if (!core.waiting) continue;
            const gap = target === Infinity ? SLEEP_MAX_MS : (target - limit) / 1e6 / (this.speed || 1);
            sleepMs = Math.min(SLEEP_MAX_MS, Math.max(1, gap));
            break outer;
          }
          wait += target - clock.nanos;
          clock.tick(target - clock.nanos);
          if (this.rebootPending) break outer;
        } else {
          const dt = core.executeInstruction() * nsPerCycle;
          busy += dt;
          // clock.tick(dt) without the call when no alarm falls due (the common case)
          const next = clock.nextAlarm;
          if (next !== null && next.nanos <= clock.nanosCounter + dt) clock.tick(dt);
          else clock.nanosCounter += dt;
          instructions++;
          if (this.rebootPending || this.halted) break outer;
        }
      }
      if (clock.nanos >= limit) {
        sleepMs = 1;
        break;
      }
      if (performance.now() - wallStart > SLICE_MS) break;
    }
    if (this.speed) this.budget -= clock.nanos - startNanos;
    this.totals.instructions += instructions;
    this.totals.busy_ns += busy;
    this.totals.wait_ns += wait;
    return sleepMs;
  }

  // A flash call holds the core for `ns` of simulated time. It runs with interrupts off
  // (rp2_flash.c), so what the clock's alarms do meanwhile (UART characters arriving) waits for
  // the core as on a chip; the first erase after flash_timing's inject also starts those bytes.
  flashTime(ns, erase) {
    const inject = this.flashTiming.inject;
    if (erase && inject) {
      this.flashTiming.inject = null;
      this.line.hostWrite(inject);
    }
    if (ns > 0) this.clock.tick(ns);
  }

  stats() {
    const wall = (performance.now() - this.wallStart) / 1000;
    const sim = this.now();
    return {
      sim_ns: sim,
      wall_s: wall,
      flash: { ...this.flashOps },
      instructions: this.totals.instructions,
      cycles: this.totals.cycles + this.mcu.core.cycles,
      busy_ns: this.totals.busy_ns,
      wait_ns: this.totals.wait_ns,
      busy_cycles: Math.round((this.totals.busy_ns * this.mcu.clkSys) / 1e9),
      clk_sys: this.mcu.clkSys,
      boots: this.boots,
      halted: this.halted,
      instructions_per_wall_s: wall ? Math.round(this.totals.instructions / wall) : 0,
      sim_per_wall: wall ? sim / 1e9 / wall : 0,
    };
  }
}
