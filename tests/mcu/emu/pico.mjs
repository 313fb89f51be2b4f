#!/usr/bin/env node
// mbnode's emulated Raspberry Pi Pico: rp2040js with the runner's models of the flash, the UART,
// the USB host and the GPIO pads (docs/mcu-emulation.md), and local endpoints for the tests:
//
//   node tests/mcu/emu/pico.mjs --bootrom ROM (--firmware FILE | --flash IMAGE | both) [options]
//
// It prints one JSON line on stdout when the endpoints listen, e.g.
//   {"ready":true,"repl":"socket://127.0.0.1:40001","uart0":"socket://127.0.0.1:40002",
//    "control":"127.0.0.1:40003",...}
// and runs until a `stop` command, SIGTERM/SIGINT, its stdin closing (when stdin is a pipe: the
// parent went away), its parent exiting, or the wall-clock time limit.

import fs from 'node:fs';
import net from 'node:net';

import { version as rp2040jsVersion } from './rp2040js.mjs';
import { Board } from './board.mjs';
import { FLASH_SIZE, readFirmware, readFlashImage } from './flash.mjs';
import { Pads } from './gpio.mjs';
import { SerialLine, parseFormat, describeFormat } from './line.mjs';
import { CdcHost } from './usbhost.mjs';

const USAGE = `usage: pico.mjs --bootrom FILE [--firmware FILE.bin|.uf2|.elf] [--flash IMAGE]
  [--save-flash FILE] [--repl-port N] [--uart-port N] [--control-port N] [--cdc-log FILE]
  [--time-limit S] [--speed X] [--uart-host BAUD,8E1|follow] [--host-gap-us N|t3.5]
  [--watch PIN,PIN] [--unique-id HEX16] [--verbose]`;

const DEFAULT_UNIQUE_ID = 'e6605838833a2b2c';

function fail(message) {
  process.stderr.write(`pico: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    bootrom: null,
    firmware: null,
    flash: null,
    saveFlash: null,
    replPort: 0,
    uartPort: 0,
    controlPort: 0,
    cdcLog: null,
    timeLimit: 900,
    speed: 1,
    uartHost: null,
    gap: 't3.5',
    watch: [],
    uniqueId: DEFAULT_UNIQUE_ID,
    verbose: false,
  };
  const takes = {
    '--bootrom': 'bootrom',
    '--firmware': 'firmware',
    '--flash': 'flash',
    '--save-flash': 'saveFlash',
    '--repl-port': 'replPort',
    '--uart-port': 'uartPort',
    '--control-port': 'controlPort',
    '--cdc-log': 'cdcLog',
    '--time-limit': 'timeLimit',
    '--speed': 'speed',
    '--uart-host': 'uartHost',
    '--host-gap-us': 'gap',
    '--watch': 'watch',
    '--unique-id': 'uniqueId',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--verbose') {
      opts.verbose = true;
      continue;
    }
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    const key = takes[arg];
    if (!key) fail(`unknown option ${arg}\n${USAGE}`);
    if (i + 1 >= argv.length) fail(`${arg} needs a value`);
    opts[key] = argv[++i];
  }
  if (!opts.bootrom) fail(`--bootrom is required (the RP2040 boot ROM, e.g. ../shared/mcu/rp2040-bootrom-b1.bin)\n${USAGE}`);
  if (!opts.firmware && !opts.flash) fail(`give --firmware, --flash or both\n${USAGE}`);
  for (const key of ['replPort', 'uartPort', 'controlPort']) {
    const n = Number(opts[key]);
    if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`${key} ${opts[key]}: allowed a port number 0..65535 (0 picks a free one)`);
    opts[key] = n;
  }
  opts.timeLimit = Number(opts.timeLimit);
  if (!(opts.timeLimit > 0)) fail('--time-limit: allowed a number of seconds > 0');
  opts.speed = Number(opts.speed);
  if (!(opts.speed >= 0)) fail('--speed: allowed a number >= 0 (0: no pacing)');
  try {
    opts.hostFormat = opts.uartHost && opts.uartHost !== 'follow' ? parseFormat(opts.uartHost) : null;
  } catch (e) {
    fail(`--uart-host ${e.message}`);
  }
  opts.gap = parseGap(opts.gap, fail);
  if (typeof opts.watch === 'string') opts.watch = opts.watch.split(',').filter(Boolean).map(Number);
  if (!/^[0-9a-fA-F]{16}$/.test(opts.uniqueId)) fail('--unique-id: allowed 16 hex digits');
  opts.uniqueId = [...Buffer.from(opts.uniqueId, 'hex')];
  return opts;
}

function parseGap(value, onError) {
  if (value === 't3.5') return 't3.5';
  const us = Number(value);
  if (!(us >= 0)) onError(`gap ${JSON.stringify(value)}: allowed "t3.5" or a number of microseconds >= 0`);
  return us * 1000;
}

// A TCP server for one client at a time: a new client replaces the old one (its socket closes).
class OneClientServer {
  constructor(port, onData, onConnect) {
    this.client = null;
    this.onData = onData;
    this.onConnect = onConnect;
    this.server = net.createServer((sock) => this.accept(sock));
    this.port = port;
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.port = this.server.address().port;
        resolve();
      });
    });
  }

  accept(sock) {
    if (this.client) this.client.destroy();
    this.client = sock;
    sock.setNoDelay(true);
    sock.on('data', (data) => this.client === sock && this.onData(data));
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.client === sock) this.client = null;
    });
    this.onConnect?.();
  }

  send(data) {
    if (this.client && data && data.length) this.client.write(data);
  }

  drop() {
    if (this.client) this.client.destroy();
    this.client = null;
  }

  close() {
    this.drop();
    this.server.close();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));

  let rom;
  let flash = Buffer.alloc(FLASH_SIZE, 0xff);
  try {
    rom = fs.readFileSync(opts.bootrom);
    if (rom.length !== 16384) throw new Error(`${opts.bootrom}: a boot ROM is 16384 bytes, this file has ${rom.length}`);
    if (opts.flash) flash = Buffer.from(readFlashImage(opts.flash));
    if (opts.firmware) for (const piece of readFirmware(opts.firmware)) flash.set(piece.data, piece.offset);
  } catch (e) {
    fail(e.code === 'ENOENT' ? `no such file: ${e.path}` : e.message);
  }

  const cdcLog = opts.cdcLog ? fs.openSync(opts.cdcLog, 'a') : null;
  let cdcOut = [];
  let board = null;
  const now = () => board.now();
  const line = new SerialLine(now, { hostFormat: opts.hostFormat, gap: opts.gap });
  const pads = new Pads(now);
  let cdcOpenedNs = null;
  const cdc = new CdcHost({ onData: (data) => cdcOut.push(data), onConnect: () => (cdcOpenedNs = board.now()) });

  const repl = new OneClientServer(opts.replPort, (data) => {
    cdc.write(data);
    board.wake();
  });
  const uart = new OneClientServer(opts.uartPort, (data) => {
    line.hostWrite(data);
    board.wake();
  });

  board = new Board({
    rom,
    flash,
    uniqueId: opts.uniqueId,
    line,
    cdc,
    pads,
    speed: opts.speed,
    verbose: opts.verbose,
    // The USB device went away and comes back: the host's serial port closes.
    onReboot: () => repl.drop(),
  });
  board.afterSlice = () => {
    if (cdcOut.length) {
      const data = Buffer.concat(cdcOut);
      cdcOut = [];
      if (cdcLog !== null) fs.writeSync(cdcLog, data);
      repl.send(data);
    }
    uart.send(line.takeHostOutput());
  };
  pads.watch(opts.watch);

  const control = net.createServer((sock) => serveControl(sock));
  let stopping = false;

  function shutdown(reason, code) {
    if (stopping) return;
    stopping = true;
    board.stop();
    board.afterSlice();
    if (opts.saveFlash) {
      try {
        board.saveFlash(opts.saveFlash);
      } catch (e) {
        process.stderr.write(`pico: cannot save the flash to ${opts.saveFlash}: ${e.message}\n`);
        code = code || 1;
      }
    }
    process.stdout.write(`${JSON.stringify({ exit: reason, sim_ns: board.now() })}\n`);
    repl.close();
    uart.close();
    control.close();
    if (cdcLog !== null) fs.closeSync(cdcLog);
    process.exit(code);
  }

  const commands = {
    status: () => ({
      boots: board.boots,
      halted: board.halted,
      cdc_open: cdc.connected,
      cdc_opened_ns: cdcOpenedNs,
      repl_client: !!repl.client,
      uart_client: !!uart.client,
    }),
    stats: () => ({ ...board.stats(), usb: cdc.stats, uart0: line.counts, rp2040js_warnings: board.logger.counts.size }),
    time: () => ({}),
    gpio: (req) => ({ pins: pads.status(req.pins || null) }),
    drive: (req) => {
      pads.setDrive(req.pin, req.level === undefined ? null : req.level);
      board.wake();
      return { pin: pads.status([req.pin])[0] };
    },
    pulses: (req) => {
      const train = pads.pulses(req.pin, req.count, req.high_ns, req.low_ns === undefined ? req.high_ns : req.low_ns);
      board.wake();
      return { train };
    },
    train: (req) => ({ train: pads.trainStatus(pads.checkPin(req.pin)) }),
    adc: (req) => {
      const ch = req.channel;
      if (!Number.isInteger(ch) || ch < 0 || ch > 4) throw new Error(`channel ${JSON.stringify(ch)}: allowed 0..4 (4: the temperature sensor)`);
      if (!Number.isInteger(req.value) || req.value < 0 || req.value > 4095) throw new Error(`value ${JSON.stringify(req.value)}: allowed 0..4095 (12 bits)`);
      board.mcu.adc.channelValues[ch] = req.value;
      return { channel: ch, value: req.value };
    },
    watch: (req) => {
      pads.watch(req.pins || []);
      return { watched: [...pads.watched] };
    },
    edges: (req) => pads.edgesSince(req.since || 0, req.pins || null),
    uart: () => ({
      device: board.mcu.uart[0].settings,
      host: line.hostFormat ? describeFormat(line.hostFormat) : 'follow',
      gap_ns: typeof line.gap === 'number' ? line.gap : 't3.5',
      busy: board.mcu.uart[0].busy,
      rx_fifo: board.mcu.uart[0].rxFifo.length,
      tx_fifo: board.mcu.uart[0].txFifo.length,
    }),
    uart_host: (req) => {
      if (req.follow) line.hostFormat = null;
      else line.hostFormat = parseFormat({ baud: req.baud, bits: req.bits, parity: req.parity, stop: req.stop });
      if (req.gap_us !== undefined) line.gap = parseGap(req.gap_us, (m) => { throw new Error(m); });
      return { host: line.hostFormat ? describeFormat(line.hostFormat) : 'follow' };
    },
    uart_trace: (req) => line.traceSince(req.since || 0, req.limit || 5000),
    uart_send: (req) => {
      if (typeof req.hex !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(req.hex)) throw new Error('hex: allowed an even number of hex digits');
      const gap = req.gap_us === undefined ? 0 : Number(req.gap_us);
      if (!(gap >= 0)) throw new Error('gap_us: allowed a number >= 0');
      line.hostWrite(Buffer.from(req.hex, 'hex'), gap * 1000);
      board.wake();
      return { queued: req.hex.length / 2 };
    },
    flash_timing: (req) => {
      const erase = Number(req.erase_ns || 0);
      const page = Number(req.page_ns || 0);
      if (!(erase >= 0 && page >= 0)) throw new Error('erase_ns, page_ns: allowed numbers >= 0');
      if (req.inject_hex !== undefined && !/^([0-9a-fA-F]{2})+$/.test(req.inject_hex)) {
        throw new Error('inject_hex: allowed an even number of hex digits');
      }
      board.flashTiming = { erase_ns: erase, page_ns: page, inject: req.inject_hex ? Buffer.from(req.inject_hex, 'hex') : null };
      return { erase_ns: erase, page_ns: page, inject: req.inject_hex ? req.inject_hex.length / 2 : 0 };
    },
    save_flash: (req) => {
      const file = req.path || opts.saveFlash;
      if (!file) throw new Error('save_flash: give "path" (no --save-flash was set)');
      board.saveFlash(file);
      return { path: file };
    },
    reset: () => {
      board.powerCycle();
      return { boots: board.boots };
    },
    stop: () => {
      setImmediate(() => shutdown('stop command', 0));
      return {};
    },
  };

  function serveControl(sock) {
    let buffered = '';
    sock.setEncoding('utf8');
    sock.on('error', () => {});
    sock.on('data', (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (text) sock.write(`${JSON.stringify(answer(text))}\n`);
      }
    });
  }

  function answer(text) {
    let req;
    try {
      req = JSON.parse(text);
    } catch {
      return { ok: false, error: `not a JSON object: ${text.slice(0, 80)}` };
    }
    const handler = commands[req && req.cmd];
    if (!handler) return { ok: false, error: `unknown command ${JSON.stringify(req && req.cmd)}: allowed ${Object.keys(commands).join(', ')}` };
    try {
      return { ok: true, sim_ns: board.now(), ...handler(req) };
    } catch (e) {
      return { ok: false, error: e.message };
    }
  }

  try {
    await repl.listen();
    await uart.listen();
    await new Promise((resolve, reject) => {
      control.once('error', reject);
      control.listen(opts.controlPort, '127.0.0.1', resolve);
    });
  } catch (e) {
    fail(`cannot listen: ${e.message}`);
  }

  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  process.on('SIGINT', () => shutdown('SIGINT', 0));
  setTimeout(() => shutdown(`time limit ${opts.timeLimit} s`, 124), opts.timeLimit * 1000).unref();
  // The parent going away: stdin (a pipe from it) closes, or we are handed to another parent.
  if (fs.fstatSync(0).isFIFO()) {
    process.stdin.on('data', () => {});
    process.stdin.on('end', () => shutdown('stdin closed', 0));
    process.stdin.on('error', () => shutdown('stdin closed', 0));
  }
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && shutdown('parent exited', 0), 1000).unref();

  board.start();
  process.stdout.write(
    `${JSON.stringify({
      ready: true,
      repl: `socket://127.0.0.1:${repl.port}`,
      uart0: `socket://127.0.0.1:${uart.port}`,
      control: `127.0.0.1:${control.address().port}`,
      cdc_log: opts.cdcLog,
      pid: process.pid,
      rp2040js: rp2040jsVersion,
      time_limit_s: opts.timeLimit,
    })}\n`,
  );
}

process.stdout.on('error', () => {});
main();
