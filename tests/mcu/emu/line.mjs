// The RS-485 line on UART0 and the host at its other end (a Modbus master, a test script).
//
// Both directions carry characters as levels in simulated time: a transmitter puts frames
// (start bit, data, parity, stop bits) on the line at its own bit time, and a receiver decodes
// them the way a UART does, so a receiver set differently from the transmitter gets what a real
// one would: other values, framing and parity errors (a parity mismatch cannot be shown on a
// pty; here it is modelled). The host side:
// - sends what its TCP client writes, one character time per byte at the host's settings
//   (by default the settings the firmware set; `uart_host` declares others);
// - behaves as a compliant master: a new burst of bytes goes on the line no sooner than the
//   inter-frame gap (t3.5 by default) after the end of the last character in either direction,
//   and never while the device transmits. Bytes that arrive while the host's previous bytes are
//   still on the line follow them back to back (one write split by TCP);
// - decodes what the device transmits and passes the bytes to its TCP client.
// Every character on the line is traced with simulated timestamps (ns).

import { frameBits, DR_FE, DR_PE, DR_BE } from './pl011.mjs';

const TRACE_MAX = 200000;
const FAST_T35_NS = 1750000; // t3.5 is fixed at 1.75 ms above 19200 baud (Modbus over serial line)

// Frames in time order that do not overlap; the line idles at 1 outside them.
class Waveform {
  constructor() {
    this.frames = [];
  }

  get end() {
    return this.frames.length ? this.frames[this.frames.length - 1].end : -Infinity;
  }

  add(frame) {
    this.frames.push(frame);
  }

  // Index of the first frame that ends after t (binary search).
  indexAfter(t) {
    const fr = this.frames;
    let lo = 0;
    let hi = fr.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (fr[mid].end <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  levelAt(t) {
    const f = this.frames[this.indexAfter(t)];
    if (!f || t < f.start) return 1;
    return f.bits[Math.min(f.bits.length - 1, Math.floor((t - f.start) / f.bitNs))];
  }

  // The first time >= t at which the line falls from 1 to 0 (a start bit begins), or null.
  nextFallingEdge(t) {
    const fr = this.frames;
    for (let k = this.indexAfter(t); k < fr.length; k++) {
      const f = fr[k];
      const prev = k > 0 ? fr[k - 1] : null;
      let before = prev && Math.abs(prev.end - f.start) < 1e-3 ? prev.bits[prev.bits.length - 1] : 1;
      for (let i = 0; i < f.bits.length; i++) {
        const at = f.start + i * f.bitNs;
        if (at >= t && before === 1 && f.bits[i] === 0) return at;
        before = f.bits[i];
      }
    }
    return null;
  }

  // Drops frames that end well before t (they can no longer matter to a decoder at t).
  prune(t) {
    let n = 0;
    while (n < this.frames.length - 1 && this.frames[n + 1].end < t) n++;
    if (n) this.frames.splice(0, n);
  }
}

// A UART receiver: hunts for a falling edge, checks the start bit at its middle, samples each
// data bit, the parity bit and the first stop bit at their middles (its own bit time, counted
// from the edge). A 0 stop bit is a framing error, all zeros including the stop bit a break.
// The character is complete when its stop bit has been sampled.
class Receiver {
  constructor() {
    this.pos = -Infinity;
  }

  // Decodes what is certain from `wave` up to `knownUntil`; with `final` the line is idle
  // after it. Calls emit({start, sampled, end, value, fe, pe, be}) per character.
  decode(wave, fmt, knownUntil, final, emit) {
    if (!fmt.bitNs) return;
    const rb = fmt.bitNs;
    const parityBits = fmt.parity === 'N' ? 0 : 1;
    const level = (t) => (t >= knownUntil ? 1 : wave.levelAt(t));
    for (;;) {
      const e = wave.nextFallingEdge(this.pos);
      if (e === null || e >= knownUntil) {
        if (final) this.pos = Math.max(this.pos, knownUntil);
        return;
      }
      const stopAt = e + rb * (1.5 + fmt.dataBits + parityBits);
      if (stopAt >= knownUntil && !final) return; // wait until the rest is known
      if (level(e + rb / 2) !== 0) {
        this.pos = e + rb / 2; // a glitch, not a start bit
        continue;
      }
      let value = 0;
      let ones = 0;
      for (let i = 0; i < fmt.dataBits; i++) {
        const b = level(e + rb * (1.5 + i));
        value |= b << i;
        ones += b;
      }
      let pe = false;
      let parityLevel = 0;
      if (parityBits) {
        parityLevel = level(e + rb * (1.5 + fmt.dataBits));
        pe = parityLevel !== expectedParity(ones, fmt.parity);
      }
      const stop = level(stopAt);
      const fe = stop === 0;
      const be = fe && value === 0 && parityLevel === 0;
      emit({ start: e, sampled: stopAt, end: e + rb * (1 + fmt.dataBits + parityBits + fmt.stopBits), value, fe, pe, be });
      this.pos = stopAt;
    }
  }
}

function expectedParity(ones, parity) {
  switch (parity) {
    case 'E':
      return ones & 1;
    case 'O':
      return (ones & 1) ^ 1;
    case 'M':
      return 1;
    default:
      return 0;
  }
}

// "19200,8E1" or {baud, bits, parity, stop} -> a frame format {bitNs, dataBits, parity, stopBits}
export function parseFormat(spec) {
  let baud, bits, parity, stop;
  if (typeof spec === 'string') {
    const m = /^(\d+)(?:[,:-]?([5-8])([NEOMS])([12]))?$/i.exec(spec.trim());
    if (!m) throw new Error(`line settings ${JSON.stringify(spec)}: allowed BAUD or BAUD,8E1 (bits 5-8, parity N/E/O/M/S, stop 1/2)`);
    baud = Number(m[1]);
    bits = m[2] ? Number(m[2]) : 8;
    parity = m[3] ? m[3].toUpperCase() : 'N';
    stop = m[4] ? Number(m[4]) : 1;
  } else {
    ({ baud, bits = 8, parity = 'N', stop = 1 } = spec);
    parity = String(parity).toUpperCase();
  }
  if (!(baud >= 50 && baud <= 10000000)) throw new Error(`baud ${baud}: allowed 50..10000000`);
  if (![5, 6, 7, 8].includes(bits)) throw new Error(`bits ${bits}: allowed 5, 6, 7, 8`);
  if (!['N', 'E', 'O', 'M', 'S'].includes(parity)) throw new Error(`parity ${parity}: allowed N, E, O, M, S`);
  if (![1, 2].includes(stop)) throw new Error(`stop ${stop}: allowed 1 or 2`);
  return { bitNs: 1e9 / baud, dataBits: bits, parity, stopBits: stop };
}

export function describeFormat(fmt) {
  return fmt && fmt.bitNs
    ? { baud: Math.round(1e9 / fmt.bitNs), bits: fmt.dataBits, parity: fmt.parity, stop: fmt.stopBits }
    : null;
}

export class SerialLine {
  // now(): global simulated time in ns.
  constructor(now, { hostFormat = null, gap = 't3.5' } = {}) {
    this.now = now;
    this.hostFormat = hostFormat; // null: use the firmware's settings
    this.gap = gap; // 't3.5' or a number of ns
    this.trace = [];
    this.traceSeq = 0;
    this.toHost = [];
    this.pending = []; // [{bytes, gapNs}] not yet on the line
    this.lastLineEnd = -Infinity;
    this.hostBurstEnd = -Infinity;
    this.burst = 0; // bursts the host has started (one per quiet-line start)
    this.uart = null;
    this.counts = { host_bytes: 0, rx_stored: 0, rx_lost: 0, tx_bytes: 0 };
    this.resetLine();
  }

  resetLine() {
    this.hostWave = new Waveform();
    this.deviceRx = new Receiver();
    this.txWave = new Waveform();
    this.hostRx = new Receiver();
    this.rxQueue = [];
  }

  // --- a boot of the chip ---------------------------------------------------------------------

  attach(uart, clock, epoch) {
    this.uart = uart;
    this.clock = clock;
    this.epoch = epoch;
    this.rxAlarm = clock.createAlarm(() => this.deliverDue());
    this.finalAlarm = clock.createAlarm(() => this.finishHostBurst());
    this.startAlarm = clock.createAlarm(() => this.tryStart());
    this.resetLine();
    this.tryStart();
  }

  // The chip went away (reset): characters on their way into it are lost.
  detach() {
    for (const c of this.rxQueue) this.record({ dir: 'rx', t_ns: c.sampled, start_ns: c.start, end_ns: c.end, value: c.value, result: 'reset' });
    this.uart = null;
    this.resetLine();
  }

  schedule(alarm, at) {
    alarm.schedule(Math.max(0, at - this.now()));
  }

  // --- settings -------------------------------------------------------------------------------

  get deviceFormat() {
    return this.uart ? this.uart.format : { bitNs: 0 };
  }

  get activeHostFormat() {
    return this.hostFormat || this.deviceFormat;
  }

  gapNs(fmt) {
    if (typeof this.gap === 'number') return this.gap;
    if (!fmt.bitNs) return 0;
    if (1e9 / fmt.bitNs > 19200.5) return FAST_T35_NS;
    return 3.5 * frameBits(0, fmt).length * fmt.bitNs;
  }

  // --- trace ----------------------------------------------------------------------------------

  record(entry) {
    entry.seq = this.traceSeq++;
    this.trace.push(entry);
    if (this.trace.length > TRACE_MAX) this.trace.splice(0, this.trace.length - TRACE_MAX);
  }

  traceSince(seq, limit = 5000) {
    const first = this.trace.length ? this.trace[0].seq : this.traceSeq;
    const from = Math.max(0, seq - first);
    const entries = this.trace.slice(from, from + limit);
    return { entries, next: entries.length ? entries[entries.length - 1].seq + 1 : Math.max(seq, first), lost: seq < first };
  }

  // --- host -> device -------------------------------------------------------------------------

  hostWrite(bytes, gapNs = 0) {
    if (!bytes.length) return;
    const now = this.now();
    if (this.hostBurstEnd > now && !gapNs && !this.pending.length) {
      this.putOnLine(bytes, 0, this.hostBurstEnd); // the rest of the same write: back to back
      return;
    }
    this.pending.push({ bytes, gapNs });
    this.tryStart();
  }

  // Starts the pending bytes once the line has been quiet for the gap (a compliant master).
  tryStart() {
    if (!this.pending.length || !this.uart) return;
    if (this.uart.sending) return; // onTxEnd(idle) calls again
    const fmt = this.activeHostFormat;
    const earliest = Math.max(this.lastLineEnd, this.hostBurstEnd) + this.gapNs(fmt);
    const now = this.now();
    if (now < earliest) {
      this.schedule(this.startAlarm, earliest);
      return;
    }
    const items = this.pending;
    this.pending = [];
    this.burst++;
    let t = now;
    for (const item of items) t = this.putOnLine(item.bytes, item.gapNs, t);
  }

  putOnLine(bytes, gapNs, t) {
    const fmt = this.activeHostFormat;
    if (!fmt.bitNs) {
      for (const value of bytes) this.record({ dir: 'host', start_ns: t, end_ns: t, value, result: 'dropped: the firmware has not set up the UART and no host settings were given' });
      return t;
    }
    for (let i = 0; i < bytes.length; i++) {
      const bits = frameBits(bytes[i], fmt);
      const frame = { start: t, bits, bitNs: fmt.bitNs, end: t + bits.length * fmt.bitNs };
      this.hostWave.add(frame);
      this.record({ dir: 'host', start_ns: frame.start, end_ns: frame.end, value: bytes[i], burst: this.burst });
      this.counts.host_bytes++;
      t = frame.end + (i + 1 < bytes.length ? gapNs : 0);
    }
    this.hostBurstEnd = t;
    this.lastLineEnd = Math.max(this.lastLineEnd, t);
    this.decodeHost(false);
    this.schedule(this.finalAlarm, this.hostBurstEnd);
    return t;
  }

  decodeHost(final) {
    const fmt = this.deviceFormat;
    const knownUntil = this.hostWave.end;
    if (fmt.bitNs) this.deviceRx.decode(this.hostWave, fmt, knownUntil, final, (c) => this.rxQueue.push(c));
    else this.deviceRx.pos = Math.max(this.deviceRx.pos, knownUntil); // no receiver set up: lost
    this.hostWave.prune(this.deviceRx.pos - 1e6);
    if (this.rxQueue.length) this.schedule(this.rxAlarm, this.rxQueue[0].sampled);
  }

  finishHostBurst() {
    if (this.hostWave.end > this.now()) return; // extended meanwhile
    this.decodeHost(true);
    this.tryStart();
  }

  deliverDue() {
    const now = this.now();
    while (this.rxQueue.length && this.rxQueue[0].sampled <= now + 1e-3) {
      const c = this.rxQueue.shift();
      const value = c.value | (c.fe ? DR_FE : 0) | (c.pe ? DR_PE : 0) | (c.be ? DR_BE : 0);
      const result = this.uart ? this.uart.receive(value) : 'reset';
      if (result === 'stored') this.counts.rx_stored++;
      else this.counts.rx_lost++;
      const entry = { dir: 'rx', t_ns: c.sampled, start_ns: c.start, end_ns: c.end, value: c.value, result };
      if (c.fe) entry.fe = true;
      if (c.pe) entry.pe = true;
      if (c.be) entry.be = true;
      this.record(entry);
    }
    if (this.rxQueue.length) this.schedule(this.rxAlarm, this.rxQueue[0].sampled);
  }

  // --- device -> host (hooks of the PL011; its times are local to the boot) -------------------

  onTxStart(frame) {
    const g = { start: this.epoch + frame.start, end: this.epoch + frame.end, bits: frame.bits, bitNs: frame.bitNs };
    this.txWave.add(g);
    this.counts.tx_bytes++;
    this.record({ dir: 'tx', start_ns: g.start, end_ns: g.end, value: frame.value });
  }

  onTxEnd(frame, idle) {
    const end = this.epoch + frame.end;
    this.lastLineEnd = Math.max(this.lastLineEnd, end);
    const fmt = this.activeHostFormat;
    const out = [];
    this.hostRx.decode(this.txWave, fmt.bitNs ? fmt : this.deviceFormat, idle ? end : this.txWave.end, idle, (c) => out.push(c.value));
    this.txWave.prune(this.hostRx.pos - 1e6);
    if (out.length) this.toHost.push(Buffer.from(out));
    if (idle) this.tryStart();
  }

  takeHostOutput() {
    if (!this.toHost.length) return null;
    const data = Buffer.concat(this.toHost);
    this.toHost = [];
    return data;
  }
}
