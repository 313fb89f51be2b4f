// The Pico's GPIO pads as the outside world sees them: what level each pin has, who drives it,
// and an edge log with simulated timestamps for the pins a test watches.
//
// rp2040js keeps a pin's input at whatever was last set from outside (low by default), so a
// pin the firmware drives did not read back its own level and a pull-up read 0. Here the level
// of a pad is resolved as on the board: a level the runner drives (a switch wired to the pin)
// wins, else the chip's own output when its output is enabled, else the pull-up or pull-down,
// else the last level (a floating pin keeps its charge); the chip's input follows that level.

import { GPIOPinState } from './rp2040js.mjs';

const PINS = 30;
const EDGES_MAX = 200000;
const FUNCTIONS = { 1: 'spi', 2: 'uart', 3: 'i2c', 4: 'pwm', 5: 'sio', 6: 'pio0', 7: 'pio1', 8: 'clock', 9: 'usb', 31: 'null' };

export class Pads {
  // now(): global simulated time in ns.
  constructor(now) {
    this.now = now;
    this.drive = new Array(PINS).fill(null);
    this.level = new Array(PINS).fill(0);
    this.watched = new Set();
    this.edges = [];
    this.edgeSeq = 0;
    this.gpio = null;
    this.trains = new Map(); // pin -> pulse train (pulses())
  }

  attach(mcu) {
    this.gpio = mcu.gpio;
    this.clock = mcu.clock;
    this.unlisten = this.gpio.map((pin, i) => pin.addListener(() => this.update(i)));
    for (let i = 0; i < PINS; i++) this.update(i);
  }

  detach() {
    for (const off of this.unlisten || []) off();
    for (const train of this.trains.values()) train.alarm.cancel();
    this.trains.clear(); // a reset stops the signal generator's trains; the pins stay driven as they were
    this.gpio = null;
  }

  resolve(i) {
    if (this.drive[i] !== null) return this.drive[i];
    const pin = this.gpio[i];
    if (pin.outputEnable) return pin.outputValue ? 1 : 0;
    const state = pin.value;
    if (state === GPIOPinState.InputPullUp) return 1;
    if (state === GPIOPinState.InputPullDown) return 0;
    return this.level[i];
  }

  update(i) {
    if (!this.gpio) return;
    const level = this.resolve(i);
    const pin = this.gpio[i];
    if (pin.rawInputValue !== !!level) pin.setInputValue(!!level);
    if (level !== this.level[i]) {
      this.level[i] = level;
      if (this.watched.has(i)) this.record(i, level);
    }
  }

  record(pin, level) {
    this.edges.push({ seq: this.edgeSeq++, pin, level, t_ns: this.now() });
    if (this.edges.length > EDGES_MAX) this.edges.splice(0, this.edges.length - EDGES_MAX);
  }

  // --- control commands -----------------------------------------------------------------------

  checkPin(pin) {
    if (!Number.isInteger(pin) || pin < 0 || pin >= PINS) throw new Error(`pin ${JSON.stringify(pin)}: allowed 0..${PINS - 1}`);
    return pin;
  }

  // Drive a pin from outside (1 or 0), or let go of it (null).
  setDrive(pin, level) {
    this.checkPin(pin);
    if (level !== null && level !== 0 && level !== 1) throw new Error(`level ${JSON.stringify(level)}: allowed 0, 1 or null (released)`);
    this.drive[pin] = level;
    this.update(pin);
  }

  // A signal generator on a pin, in simulated time: `count` pulses away from the pin's level now
  // (a pull-up's 1: pulses to 0), each `highNs` long with `lowNs` between them; the pin is then
  // left driven at that level. A new train on the pin replaces the one running.
  pulses(pin, count, highNs, lowNs) {
    this.checkPin(pin);
    if (!this.gpio) throw new Error('pulses: the chip is not running');
    for (const [name, v, low] of [['count', count, 1], ['high_ns', highNs, 1], ['low_ns', lowNs, 1]]) {
      if (!Number.isInteger(v) || v < low) throw new Error(`${name} ${JSON.stringify(v)}: allowed an integer >= ${low}`);
    }
    this.trains.get(pin)?.alarm.cancel();
    const base = this.resolve(pin);
    const train = { pin, left: 2 * count, base, highNs, lowNs, started_ns: this.now(), alarm: null };
    train.alarm = this.clock.createAlarm(() => {
      train.left--;
      this.setDrive(pin, train.left % 2 ? 1 - base : base);
      if (train.left > 0) train.alarm.schedule(train.left % 2 ? highNs : lowNs);
      else this.trains.delete(pin);
    });
    this.trains.set(pin, train);
    this.drive[pin] = base;
    train.alarm.schedule(0);
    return this.trainStatus(pin);
  }

  trainStatus(pin) {
    const t = this.trains.get(pin);
    return { pin, pulses_left: t ? Math.ceil(t.left / 2) : 0, level: this.level[pin] };
  }

  watch(pins) {
    for (const pin of pins) {
      this.checkPin(pin);
      if (!this.watched.has(pin)) {
        this.watched.add(pin);
        this.record(pin, this.level[pin]);
      }
    }
  }

  edgesSince(seq, pins = null, limit = 10000) {
    const first = this.edges.length ? this.edges[0].seq : this.edgeSeq;
    let list = this.edges.slice(Math.max(0, seq - first));
    if (pins) list = list.filter((e) => pins.includes(e.pin));
    list = list.slice(0, limit);
    return { edges: list, next: list.length ? list[list.length - 1].seq + 1 : this.edgeSeq, lost: seq < first };
  }

  status(pins = null) {
    const list = pins || [...Array(PINS).keys()];
    return list.map((i) => {
      this.checkPin(i);
      const pin = this.gpio ? this.gpio[i] : null;
      const out = pin ? pin.outputEnable : false;
      const entry = {
        pin: i,
        level: this.level[i],
        function: pin ? FUNCTIONS[pin.functionSelect] || String(pin.functionSelect) : 'null',
        output: out,
        drive: this.drive[i],
        pull: pin ? (pin.pullupEnabled ? (pin.pulldownEnabled ? 'keeper' : 'up') : pin.pulldownEnabled ? 'down' : null) : null,
      };
      if (out && this.drive[i] !== null && (pin.outputValue ? 1 : 0) !== this.drive[i]) entry.conflict = true;
      return entry;
    });
  }
}
