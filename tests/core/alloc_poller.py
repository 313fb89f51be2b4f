"""Proves the poller's steady state allocation-free: run on the unix port (not CPython).

The firmware's own loop, poller, masters and engine run in this process; the script is also
the two servers the poller asks: a Modbus TCP server on a listening socket (127.0.0.1:PORT)
and a Modbus RTU device on the pty's other end (the firmware's end handed over as fd:N). Each
case starts one round of a server's requests and serves it to the end, answers included, while
micropython.heap_lock() makes any allocation raise MemoryError (after a warm-up round
unlocked: the first round connects, which allocates the socket). Every data type the poller
takes lands in memory positions or local registers; alarms compare (met, not met, first
trigger, redundancy period) and act (a write to the TCP server, a local output). One line per
case, then "N passed, M failed".
"""

import socket
import struct
import sys
import termios
import time

import board
from heaplock import Heard, Report, locked
from mbnode import startup, config, memory32, poller
from mbnode.crc import crc16
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, DataModel
from parts import made

FD = int(sys.argv[1])
DEVICE = sys.argv[2]
PORT = int(sys.argv[3])

CONFIG = {
    "tcp": {"enabled": False},
    "rtu": {"enabled": True, "mode": "master", "baud": 115200},
    "board": {"rtu_device": "fd:%d" % FD},
    "poller": {"enabled": True, "servers": [
        {"name": "tcp", "host": "127.0.0.1", "port": PORT, "unit": 5, "period_ms": 3600000, "timeout_ms": 500,
         "requests": [
             {"name": "f32", "first": 1, "count": 2, "type": "float32", "memory": 1, "table": "holding",
              "address": 0x40},
             {"name": "i16le", "first": 3, "count": 4, "type": "int16", "byte_order": "LE", "memory": 3,
              "table": "input", "address": 0x40},
             {"name": "u64cdab", "first": 7, "count": 4, "type": "uint64", "word_order": "LE", "memory": 7},
             {"name": "f64", "first": 11, "count": 4, "type": "float64", "memory": 9},
             {"name": "i32", "first": 15, "count": 2, "type": "int32", "memory": 11},
             {"name": "ascii", "first": 17, "count": 2, "type": "ascii", "memory": 12},
             {"name": "coils", "function": 1, "first": 1, "count": 16, "table": "coil", "address": 0x40,
              "memory": 20},
             {"name": "inputs", "function": 2, "first": 17, "count": 8, "table": "discrete", "address": 0x40},
         ]},
        {"name": "rtu", "line": "rs485", "unit": 17, "period_ms": 3600000, "timeout_ms": 50, "requests": [
            {"name": "u8", "function": 4, "first": 1, "count": 2, "type": "int8", "memory": 40, "table": "holding",
             "address": 0x50},
            {"name": "hex", "function": 3, "first": 3, "count": 2, "type": "hex", "memory": 44},
            {"name": "flags", "function": 3, "first": 5, "count": 2, "type": "bool", "memory": 46},
        ]},
        {"name": "mute", "line": "rs485", "unit": 18, "period_ms": 3600000, "timeout_ms": 20, "requests": [
            {"name": "x", "first": 1, "count": 1, "memory": 50}]},
    ], "alarms": [
        {"name": "hot", "server": "tcp", "request": "f32", "condition": ">", "value": 1.0,
         "output": {"table": "coil", "address": 5, "set": "invert"}},
        {"name": "low", "server": "tcp", "request": "i16le", "index": 1, "condition": "<=", "value": -2,
         "frequency": "first", "write": {"server": "tcp", "function": 6, "first": 100, "values": [4242]}},
        {"name": "byte", "server": "rtu", "request": "u8", "index": 1, "condition": "==", "value": -1,
         "redundancy_s": 3600, "output": {"table": "holding", "address": 7, "value": 99}},
    ]},
}

# The TCP server's registers and bits; the RTU device's registers.
regs = bytearray(64)
bits = bytearray(4)
rregs = bytearray(16)
writes = 0  # write requests the TCP server got

# The script's state is global: a closure over more than five variables allocates when called.
loop = pol = lsock = conn = dev = None
rx = bytearray(300)
tx = bytearray(300)
heard = bytearray(64)
answer = bytearray(64)
silent = [False]


def tcp_peer():
    global writes
    k = conn.readinto(rx) if conn is not None else None
    if not k:
        return
    fc = rx[7]
    a = (rx[8] << 8) | rx[9]
    n = (rx[10] << 8) | rx[11]
    for i in range(7):
        tx[i] = rx[i]
    tx[7] = fc
    if fc == 3 or fc == 4:
        tx[8] = 2 * n
        for i in range(2 * n):
            tx[9 + i] = regs[2 * a + i]
        size = 9 + 2 * n
    elif fc == 1 or fc == 2:
        nb = (n + 7) >> 3
        tx[8] = nb
        for i in range(nb):
            tx[9 + i] = bits[(a >> 3) + i]
        size = 9 + nb
    else:  # a write: echoed
        writes += 1
        for i in range(8, 12):
            tx[i] = rx[i]
        size = 12
    tx[4] = 0
    tx[5] = size - 6
    conn.write(tx, size)


def rtu_device():
    k = dev.readinto(heard)
    if not k or k < 8 or heard[0] != 17:
        return  # nothing, or a request for the unit that never answers
    fc = heard[1]
    a = (heard[2] << 8) | heard[3]
    n = (heard[4] << 8) | heard[5]
    answer[0] = 17
    answer[1] = fc
    answer[2] = 2 * n
    for i in range(2 * n):
        answer[3 + i] = rregs[2 * a + i]
    c = crc16(answer, 0, 3 + 2 * n)
    answer[3 + 2 * n] = c & 0xFF
    answer[4 + 2 * n] = c >> 8
    dev.write(answer, 5 + 2 * n)


def round_of(s):
    """Serve one round of server s to its end (and any alarm's write after it)."""
    r0 = s.rounds
    s.due = time.ticks_ms()
    for _ in range(400):
        loop.step(2)
        tcp_peer()
        rtu_device()
        if s.rounds > r0 and s.state == 0 and not busy_writes():
            return


def busy_writes():
    for a in pol.alarms:
        if a.write is not None and a.pending:
            return True
    return False


def server(name):
    for s in pol.servers:
        if s.name == name:
            return s


def put(buf, reg, data):
    for i in range(len(data)):
        buf[2 * reg + i] = data[i]


def main():
    global loop, pol, lsock, conn, dev
    # The data model's 5 KB buffer first, while the heap is one piece, as app.run does.
    model = DataModel()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
    lsock.listen(1)
    made_pollers = made(poller, "Poller")
    cfg = config.validate(CONFIG, *board.config_rules())
    loop, ready = startup.build(cfg, board, model)
    pol = made_pollers[0]
    heard_out = Heard()
    pol.model.subscribe(heard_out.changed)
    dev = open(DEVICE, "r+b")
    termios.setraw(dev.fileno())
    attrs = termios.tcgetattr(dev.fileno())
    attrs[6][5] = 0
    attrs[6][6] = 0
    termios.tcsetattr(dev.fileno(), termios.TCSANOW, attrs)
    tcp, rtu, mute = server("tcp"), server("rtu"), server("mute")
    # The first rounds (unlocked): the TCP connection is made and accepted.
    for _ in range(50):
        loop.step(5)
        if conn is None and tcp.state == 3:
            c, _ = lsock.accept()
            c.setblocking(False)
            conn = c
        tcp_peer()
        rtu_device()
        if conn is not None and tcp.state == 0 and rtu.state == 0 and mute.state == 0:
            break
    model = pol.model
    report = Report(40)

    def tcp_values(f32, i16, u64, f64, i32, text, coils, inputs):
        put(regs, 0, struct.pack(">f", f32))
        put(regs, 2, b"".join([struct.pack("<h", v) for v in i16]))
        be = struct.pack(">Q", u64)
        put(regs, 6, be[6:8] + be[4:6] + be[2:4] + be[0:2])
        put(regs, 10, struct.pack(">d", f64))
        put(regs, 14, struct.pack(">i", i32))
        put(regs, 16, text)
        bits[0] = coils & 0xFF
        bits[1] = coils >> 8
        bits[2] = inputs

    def run_tcp():
        round_of(tcp)

    def tcp_landed():
        return ([memory32.get_u32(model, 1)] + [memory32.get_i32(model, 3 + i) for i in range(4)] + [memory32.get_u32(model, 7), memory32.get_u32(model, 8)]
                + [memory32.get_u32(model, 9), memory32.get_u32(model, 10), memory32.get_i32(model, 11), memory32.get_u32(model, 12), memory32.get_u32(model, 13)]
                + [model.get_bit(COILS, 0x40 + i) for i in range(16)] + [memory32.get_u32(model, 20 + i) for i in range(16)]
                + [model.get_bit(DISCRETE_INPUTS, 0x40 + i) for i in range(8)]
                + [model.get_reg(HOLDING, 0x40), model.get_reg(HOLDING, 0x41)]
                + [model.get_reg(INPUT, 0x40 + i) for i in range(4)])

    def tcp_expected(f32, i16, u64, f64, i32, text, coils, inputs):
        f = struct.unpack(">I", struct.pack(">f", f32))[0]
        d = struct.unpack(">II", struct.pack(">d", f64))
        return ([f] + list(i16) + [u64 & 0xFFFFFFFF, u64 >> 32] + [d[1], d[0], i32]
                + [(text[0] << 8) | text[1], (text[2] << 8) | text[3]]
                + [(coils >> i) & 1 for i in range(16)] + [(coils >> i) & 1 for i in range(16)]
                + [(inputs >> i) & 1 for i in range(8)] + [f >> 16, f & 0xFFFF] + [v & 0xFFFF for v in i16])

    # Case: every TCP type lands (float32, int16 LE, uint64 word-swapped, float64, int32, ascii, bits).
    values = (2.5, (-2, 3, -32768, 32767), 0x0123456789ABCDEF, -1.25e10, -123456789, b"Hi!\0", 0xA53C, 0x96)
    tcp_values(*values)
    fired = [a.fired for a in pol.alarms]
    a0 = tcp.answers
    err, got = locked(run_tcp, tcp_landed)
    # Both rounds ran to the end: 8 answers each.
    ok = err is None and got == tcp_expected(*values) and tcp.answers - a0 == 16
    report.line("tcp round: 8 requests, every type", ok, err or (tcp.answers - a0, got), 0, b"")
    # The two rounds (warm-up and locked) each met "hot" (> 1.0, every: the coil inverted twice)
    # and "low" (index 1 <= -2 is 3: not met).
    ok = [a.fired - f for a, f in zip(pol.alarms, fired)] == [2, 0, 0] and model.get_bit(COILS, 5) == 0
    report.line("alarm every: output inverted", ok, "fired %r" % [a.fired for a in pol.alarms], 0, b"")
    # Case: the "first" alarm with a write to the TCP server, its answer awaited. Its condition is
    # made new before each round (warm-up and locked), so both act.
    values = (0.5, (7, -2, 0, 0), 1, 0.0, 0, b"ok\0\0", 0, 0)
    tcp_values(*values)
    w0 = writes
    low = pol.alarms[1]

    def fresh():
        low.was = False

    err, got = locked(run_tcp, tcp_landed, fresh)
    ok = err is None and got == tcp_expected(*values) and low.fired == 2 and writes - w0 == 2 and low.writes == 2
    report.line("alarm first: a write, answered", ok, err or "fired %d writes %d" % (low.fired, writes - w0), 0, b"")
    # Case: the RTU device's int8, hex and bool-on-registers values; an alarm within its redundancy period.
    put(rregs, 0, b"\x80\xff\x12\x34")
    put(rregs, 2, b"\xab\xcd\x00\x01")
    put(rregs, 4, b"\x00\x00\x01\x00")

    def run_rtu():
        round_of(rtu)

    def rtu_landed():
        return ([memory32.get_i32(model, 40 + i) for i in range(4)] + [memory32.get_u32(model, 44), memory32.get_u32(model, 45)]
                + [memory32.get_u32(model, 46), memory32.get_u32(model, 47)] + [model.get_reg(HOLDING, 0x50), model.get_reg(HOLDING, 0x51)]
                + [pol.alarms[2].fired, pol.alarms[2].skipped, model.get_reg(HOLDING, 7)])

    a0 = rtu.answers
    err, got = locked(run_rtu, rtu_landed)
    expect = [-128, -1, 0x12, 0x34, 0xABCD, 0x0001, 0, 1, 0x80FF, 0x1234, 1, 1, 99]
    ok = err is None and got == expect and rtu.answers - a0 == 6
    report.line("rtu round: int8, hex, bool; redundancy", ok, err or (rtu.answers - a0, got), 0, b"")

    # Case: a unit that never answers, after its first timeout (which printed a line).
    def run_mute():
        round_of(mute)

    def mute_counted():
        return mute.timeouts

    t0 = mute.timeouts
    err, got = locked(run_mute, mute_counted)
    report.line("rtu timeout (steady state)", err is None and got - t0 == 2, err or got, 0, b"")
    report.line("output subscribers told", heard_out.count > 0, heard_out.count, 0, b"")
    return report.finish()


sys.exit(1 if main() else 0)
