// The RP2040's UART (an ARM PL011), modelled the way the chip behaves on the wire rather than
// as rp2040js 1.4.1 does (gaps 2 and 4 of docs/mcu-emulation.md):
//
// - TX: a 32-entry FIFO in front of a shift register. A character leaves the FIFO when the shift
//   register takes it and occupies the line for one character time: start bit, data bits,
//   parity bit, stop bits at the bit time the firmware programmed in IBRD/FBRD (one bit is 16
//   UARTCLK periods of the divisor). UARTFR.BUSY stays set from the moment the FIFO gets a byte
//   until the last stop bit of the last byte is out; TXFE only says the FIFO is empty.
// - TX interrupt: raised when the FIFO level drops through the UARTIFLS transmit level (from
//   above it to at or below it) as the shift register takes a byte, cleared by UARTICR.TXIC or
//   by writes that fill the FIFO above the level again. It is never re-raised just because the
//   level is low, so the UART IRQ does not fire forever once TXIM is set.
// - RX: characters come from the line model at the moment the receiver has sampled their stop
//   bit, each with its framing/parity/break flags. A 32-entry FIFO; a character arriving while
//   it is full is lost and the overrun flag is set (and travels with the next stored character).
//   RXINTR is raised when a character arrives and the FIFO then holds at least the UARTIFLS
//   receive level, and cleared when reads take the level below it (or by UARTICR).
//   RTINTR (receive timeout) is raised 32 bit periods after the last character arrived if the
//   FIFO is not empty, and cleared when the FIFO is read empty (or by UARTICR).
// - The UART is reset (FIFOs emptied, registers to their reset values) when the RESETS block
//   holds it in reset, as uart_init() does.

import { BasePeripheral } from './rp2040js.mjs';

const UARTDR = 0x00;
const UARTRSR = 0x04;
const UARTFR = 0x18;
const UARTILPR = 0x20;
const UARTIBRD = 0x24;
const UARTFBRD = 0x28;
const UARTLCR_H = 0x2c;
const UARTCR = 0x30;
const UARTIFLS = 0x34;
const UARTIMSC = 0x38;
const UARTRIS = 0x3c;
const UARTMIS = 0x40;
const UARTICR = 0x44;
const UARTDMACR = 0x48;
const PERIPH_ID = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1]; // UARTPeriphID0..3, UARTPCellID0..3

// UARTFR
const FR_BUSY = 1 << 3;
const FR_RXFE = 1 << 4;
const FR_TXFF = 1 << 5;
const FR_RXFF = 1 << 6;
const FR_TXFE = 1 << 7;
// UARTLCR_H
const LCR_PEN = 1 << 1;
const LCR_EPS = 1 << 2;
const LCR_STP2 = 1 << 3;
const LCR_FEN = 1 << 4;
const LCR_SPS = 1 << 7;
// UARTCR
const CR_UARTEN = 1 << 0;
const CR_TXE = 1 << 8;
const CR_RXE = 1 << 9;
// interrupt bits (UARTRIS/UARTMIS/UARTIMSC/UARTICR)
export const INT_RX = 1 << 4;
export const INT_TX = 1 << 5;
export const INT_RT = 1 << 6;
export const INT_FE = 1 << 7;
export const INT_PE = 1 << 8;
export const INT_BE = 1 << 9;
export const INT_OE = 1 << 10;
// error bits of a received character (UARTDR bits 8..11)
export const DR_FE = 1 << 8;
export const DR_PE = 1 << 9;
export const DR_BE = 1 << 10;
export const DR_OE = 1 << 11;

const FIFO_DEPTH = 32;
const FIFO_LEVELS = [4, 8, 16, 24, 28]; // UARTIFLS 1/8, 1/4, 1/2, 3/4, 7/8 of 32
const RT_BITS = 32; // receive timeout, in bit periods

export class PL011 extends BasePeripheral {
  // hooks: { onTxStart(frame), onTxEnd(frame, idle), onReset() }, any may be absent.
  constructor(rp2040, name, irq, dreq, clock, hooks = {}) {
    super(rp2040, name);
    this.irq = irq;
    this.dreq = dreq;
    this.clock = clock;
    this.hooks = hooks;
    this.txAlarm = clock.createAlarm(() => this.txShiftDone());
    this.rtAlarm = clock.createAlarm(() => this.receiveTimeout());
    this.reset();
  }

  reset() {
    this.ibrd = 0;
    this.fbrd = 0;
    this.lcrh = 0;
    this.cr = CR_RXE | CR_TXE;
    this.ifls = 0x12;
    this.imsc = 0;
    this.ris = 0;
    this.dmacr = 0;
    this.ilpr = 0;
    this.rsr = 0;
    this.txFifo = [];
    this.rxFifo = [];
    this.shifting = null; // the frame on the line, or null
    this.overrunPending = false;
    this.txAlarm.cancel();
    this.rtAlarm.cancel();
    this.updateInterrupt();
    this.hooks.onReset?.();
  }

  // --- settings the firmware programmed ----------------------------------------------------

  get fifoDepth() {
    return this.lcrh & LCR_FEN ? FIFO_DEPTH : 1;
  }

  get rxLevel() {
    return this.lcrh & LCR_FEN ? FIFO_LEVELS[(this.ifls >> 3) & 7] ?? 16 : 1;
  }

  get txLevel() {
    return this.lcrh & LCR_FEN ? FIFO_LEVELS[this.ifls & 7] ?? 16 : 0;
  }

  // One bit lasts 16 UARTCLK (clk_peri) periods times the divisor IBRD + FBRD/64.
  get bitNs() {
    const divisor = this.ibrd + this.fbrd / 64;
    return divisor ? (16 * divisor * 1e9) / this.rp2040.clkPeri : 0;
  }

  get format() {
    const pen = !!(this.lcrh & LCR_PEN);
    let parity = 'N';
    if (pen) {
      if (this.lcrh & LCR_SPS) parity = this.lcrh & LCR_EPS ? 'S' : 'M'; // stick parity: 0 / 1
      else parity = this.lcrh & LCR_EPS ? 'E' : 'O';
    }
    return {
      bitNs: this.bitNs,
      dataBits: 5 + ((this.lcrh >> 5) & 3),
      parity,
      stopBits: this.lcrh & LCR_STP2 ? 2 : 1,
    };
  }

  get settings() {
    const f = this.format;
    return {
      enabled: !!(this.cr & CR_UARTEN),
      tx_enabled: !!(this.cr & CR_TXE),
      rx_enabled: !!(this.cr & CR_RXE),
      baud: f.bitNs ? Math.round(1e9 / f.bitNs) : 0,
      baud_exact: f.bitNs ? 1e9 / f.bitNs : 0,
      bits: f.dataBits,
      parity: f.parity,
      stop: f.stopBits,
      fifo: !!(this.lcrh & LCR_FEN),
      rx_level: this.rxLevel,
      tx_level: this.txLevel,
      imsc: this.imsc,
      ibrd: this.ibrd,
      fbrd: this.fbrd,
      clk_peri: this.rp2040.clkPeri,
    };
  }

  // rp2040js calls this when clk_peri changes; the bit time is computed from it on each use.
  clkPeriChanged() {}

  get txEnabled() {
    return (this.cr & (CR_UARTEN | CR_TXE)) === (CR_UARTEN | CR_TXE) && this.bitNs > 0;
  }

  get rxEnabled() {
    return (this.cr & (CR_UARTEN | CR_RXE)) === (CR_UARTEN | CR_RXE) && this.bitNs > 0;
  }

  // UARTFR.BUSY: a byte is in the FIFO or on the line.
  get busy() {
    return this.shifting !== null || this.txFifo.length > 0;
  }

  // A character is on the line right now.
  get sending() {
    return this.shifting !== null;
  }

  // --- interrupts -----------------------------------------------------------------------------

  updateInterrupt() {
    this.rp2040.setInterrupt(this.irq, (this.ris & this.imsc) !== 0);
    const dma = this.rp2040.dma;
    if (this.txFifo.length < this.fifoDepth) dma.setDREQ(this.dreq.tx);
    else dma.clearDREQ(this.dreq.tx);
    if (this.rxFifo.length) dma.setDREQ(this.dreq.rx);
    else dma.clearDREQ(this.dreq.rx);
  }

  // --- transmit -------------------------------------------------------------------------------

  writeData(value) {
    if (this.txFifo.length >= this.fifoDepth) return; // a write to a full FIFO is lost
    this.txFifo.push(value & 0xff);
    if (this.txFifo.length > this.txLevel) this.ris &= ~INT_TX;
    this.startShift(this.clock.nanos);
    this.updateInterrupt();
  }

  // The shift register takes the next byte as soon as it is free (at `at`, the end of the
  // previous character, or now).
  startShift(at) {
    if (this.shifting || !this.txFifo.length || !this.txEnabled) return;
    const before = this.txFifo.length;
    const value = this.txFifo.shift();
    if (before > this.txLevel && this.txFifo.length <= this.txLevel) this.ris |= INT_TX;
    const f = this.format;
    const bits = frameBits(value, f);
    const frame = { value, bits, bitNs: f.bitNs, start: at, end: at + bits.length * f.bitNs, format: f };
    this.shifting = frame;
    this.txAlarm.schedule(frame.end - this.clock.nanos);
    this.hooks.onTxStart?.(frame);
  }

  txShiftDone() {
    const frame = this.shifting;
    this.shifting = null;
    this.startShift(frame.end);
    this.hooks.onTxEnd?.(frame, this.shifting === null); // idle: nothing follows on the line
    this.updateInterrupt();
  }

  // --- receive --------------------------------------------------------------------------------

  // A character whose stop bit the receiver has just sampled: value with the DR error bits.
  // Returns what became of it: 'stored', 'overrun' (FIFO full, lost) or 'disabled'.
  receive(value) {
    if (!this.rxEnabled) return 'disabled';
    // The receive timeout counts from the last character the receiver got, kept or not.
    this.rtAlarm.schedule(RT_BITS * this.bitNs);
    if (this.rxFifo.length >= this.fifoDepth) {
      this.overrunPending = true;
      this.rsr |= 8;
      this.ris |= INT_OE;
      this.updateInterrupt();
      return 'overrun';
    }
    if (this.overrunPending) {
      value |= DR_OE;
      this.overrunPending = false;
    }
    this.rxFifo.push(value);
    if (value & DR_FE) this.ris |= INT_FE;
    if (value & DR_PE) this.ris |= INT_PE;
    if (value & DR_BE) this.ris |= INT_BE;
    if (this.rxFifo.length >= this.rxLevel) this.ris |= INT_RX;
    this.updateInterrupt();
    return 'stored';
  }

  receiveTimeout() {
    if (this.rxFifo.length) {
      this.ris |= INT_RT;
      this.updateInterrupt();
    }
  }

  readData() {
    if (!this.rxFifo.length) return 0;
    const value = this.rxFifo.shift();
    this.rsr = (this.rsr & 8) | ((value >> 8) & 7);
    if (this.rxFifo.length < this.rxLevel) this.ris &= ~INT_RX;
    if (!this.rxFifo.length) this.ris &= ~INT_RT;
    this.updateInterrupt();
    return value;
  }

  // --- registers ------------------------------------------------------------------------------

  get flags() {
    return (
      (this.busy ? FR_BUSY : 0) |
      (this.rxFifo.length ? 0 : FR_RXFE) |
      (this.txFifo.length >= this.fifoDepth ? FR_TXFF : 0) |
      (this.rxFifo.length >= this.fifoDepth ? FR_RXFF : 0) |
      (this.txFifo.length ? 0 : FR_TXFE)
    );
  }

  readUint32(offset) {
    switch (offset) {
      case UARTDR:
        return this.readData();
      case UARTRSR:
        return this.rsr;
      case UARTFR:
        return this.flags;
      case UARTILPR:
        return this.ilpr;
      case UARTIBRD:
        return this.ibrd;
      case UARTFBRD:
        return this.fbrd;
      case UARTLCR_H:
        return this.lcrh;
      case UARTCR:
        return this.cr;
      case UARTIFLS:
        return this.ifls;
      case UARTIMSC:
        return this.imsc;
      case UARTRIS:
        return this.ris;
      case UARTMIS:
        return this.ris & this.imsc;
      case UARTICR:
        return 0;
      case UARTDMACR:
        return this.dmacr;
    }
    if (offset >= 0xfe0 && offset <= 0xffc) return PERIPH_ID[(offset - 0xfe0) >> 2];
    return super.readUint32(offset);
  }

  writeUint32(offset, value) {
    switch (offset) {
      case UARTDR:
        this.writeData(value);
        return;
      case UARTRSR: // UARTECR: any write clears the error flags
        this.rsr = 0;
        return;
      case UARTILPR:
        this.ilpr = value & 0xff;
        return;
      case UARTIBRD:
        this.ibrd = value & 0xffff;
        return;
      case UARTFBRD:
        this.fbrd = value & 0x3f;
        return;
      case UARTLCR_H:
        this.lcrh = value & 0xff; // BRK is kept but puts no break on the line (not modelled)
        this.startShift(this.clock.nanos);
        this.updateInterrupt();
        return;
      case UARTCR:
        this.cr = value & 0xff87;
        this.startShift(this.clock.nanos);
        this.updateInterrupt();
        return;
      case UARTIFLS:
        this.ifls = value & 0x3f;
        return;
      case UARTIMSC:
        this.imsc = value & 0x7ff;
        this.updateInterrupt();
        return;
      case UARTICR:
        this.ris &= ~(value & 0x7ff);
        this.updateInterrupt();
        return;
      case UARTDMACR:
        this.dmacr = value & 7;
        return;
    }
    super.writeUint32(offset, value);
  }
}

// The levels of one character on the line, one entry per bit: start bit (0), data bits LSB
// first, the parity bit if any, stop bits (1).
export function frameBits(value, format) {
  const bits = [0];
  let ones = 0;
  for (let i = 0; i < format.dataBits; i++) {
    const b = (value >> i) & 1;
    bits.push(b);
    ones += b;
  }
  const p = parityBit(ones, format.parity);
  if (p !== null) bits.push(p);
  for (let i = 0; i < format.stopBits; i++) bits.push(1);
  return bits;
}

// The parity bit for a character with `ones` one-bits: E even, O odd, M mark (1), S space (0).
export function parityBit(ones, parity) {
  switch (parity) {
    case 'E':
      return ones & 1;
    case 'O':
      return (ones & 1) ^ 1;
    case 'M':
      return 1;
    case 'S':
      return 0;
    default:
      return null;
  }
}
