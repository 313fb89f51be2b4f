"""Unix board: the simulator's I/O lives in RAM, its field side behind a line protocol.

Every channel of the map is present unless the configuration says otherwise. The control
channel (docs/simulator.md) lets tests and users set inputs (DI, AI) and read outputs (DO, AO)
of the running firmware; it is not the Modbus hot path, so it may allocate.
"""

import errno
import socket
import time

from mbnode.datamodel import (
    BIT_CHANNELS,
    COILS,
    DISCRETE_INPUTS,
    HOLDING,
    INPUT,
    MEM_POSITIONS,
    REG_CHANNELS,
)

NAME = "unix"
PORT = "unix"  # the MicroPython port
MICROPYTHON_BOARD = "standard"  # the unix port's variant that .cache/bin/micropython-* are
CHIP = None  # no pins
MPY_ARCH = "x64"  # the 64-bit build; the 32-bit one is x86 (mbnode sim --bits 32)
WIFI = False
KEEP_SERVING = False  # a bad configuration exits with status 2: the simulator is run by a person or a test
CONFIG_SCHEMA = {
    "io": ("", "host_port", "empty allowed"),
    "rtu_device": ("/dev/ttyUSB0", "text", 200),
    "rtu_peer": ("", "text", 200),
}


def config_rules():
    """(schema of the board section, default configuration, check): the global defaults."""
    return CONFIG_SCHEMA, None, None

# table name -> (kind, table, number of addresses)
_TABLES = {
    "do": ("bit", COILS, BIT_CHANNELS),
    "di": ("bit", DISCRETE_INPUTS, BIT_CHANNELS),
    "ao": ("reg", HOLDING, REG_CHANNELS),
    "ai": ("reg", INPUT, REG_CHANNELS),
    "mem": ("mem", None, MEM_POSITIONS),
}

_state = {}


def start(loop, model, cfg):
    _state["model"] = model
    if cfg["io"]:
        host, port = cfg["io"].rsplit(":", 1)
        try:
            _state["io"] = IoChannel(loop, model, host, int(port))
        except OSError as e:
            from mbnode.app import cannot_listen

            cannot_listen("io", host, int(port), e)


def describe():
    io = _state.get("io")
    return ["io %s:%d" % io.address] if io else []


def open_rtu(rtu, cfg):
    """The serial port for Modbus RTU: board.rtu_device is a tty path (set up raw with the
    configured line settings) or "fd:N", an open pty the simulator hands over as it is.
    board.rtu_peer, when set, is the name shown for it (the pty end clients open)."""
    from ttyport import TtyPort

    return TtyPort(cfg["rtu_device"], cfg["rtu_peer"], rtu["baud"], rtu["parity"], rtu["stopbits"])


_USAGE = "allowed: get TABLE ADDR [COUNT] | set TABLE ADDR V1 [V2 ...] | heap; TABLE: do di ao ai mem"


def _int(word, what):
    try:
        return int(word, 0)
    except ValueError:
        raise ValueError("%s %s: allowed a decimal or 0x hex integer" % (what, word))


def execute(model, line):
    """One control request (text without the newline) -> reply text (without newline)."""
    words = line.split()
    try:
        if words == ["heap"]:
            import gc

            gc.collect()
            return "ok %d %d" % (gc.mem_alloc(), gc.mem_free())
        if len(words) < 3 or words[0] not in ("get", "set") or words[1] not in _TABLES:
            raise ValueError(_USAGE)
        kind, table, size = _TABLES[words[1]]
        first = _int(words[2], "ADDR")
        if words[0] == "get":
            if len(words) > 4:
                raise ValueError("get takes ADDR and COUNT only; " + _USAGE)
            count = _int(words[3], "COUNT") if len(words) > 3 else 1
            if count < 1:
                raise ValueError("COUNT %d: allowed 1 or more" % count)
            values = None
        else:
            values = [_int(w, "value") for w in words[3:]]
            count = len(values)
            if not count:
                raise ValueError("set needs at least one value; " + _USAGE)
        low = 1 if kind == "mem" else 0
        if first < low or first + count - 1 > size - 1 + low:
            raise ValueError("addresses %d..%d outside %s %d..%d"
                             % (first, first + count - 1, words[1], low, size - 1 + low))
        out = []
        for i in range(count):
            a = first + i
            if kind == "bit":
                if values is None:
                    out.append(model.get_bit(table, a))
                elif values[i] in (0, 1):
                    model.set_bit(table, a, values[i])
                else:
                    raise ValueError("bit value %d: allowed 0 or 1" % values[i])
            elif kind == "reg":
                if values is None:
                    out.append(model.get_reg(table, a))
                elif 0 <= values[i] <= 0xFFFF:
                    model.set_reg(table, a, values[i])
                else:
                    raise ValueError("register value %d: allowed 0..65535" % values[i])
            elif values is None:
                out.append(model.get_u32(a))
            else:
                model.set_u32(a, values[i])
        return " ".join(["ok"] + [str(v) for v in out])
    except ValueError as e:
        return "err %s" % e


_POLLIN = 1
_POLLOUT = 4
_LINE_MAX = 256  # characters of a request; a longer one is answered with an error
_OUT_MAX = 4096  # bytes of replies waiting for a client before its requests wait too
_CLIENTS = 4  # connections at once; a fifth replaces the one that has waited longest


class _IoClient:
    """One control connection. Never blocks the loop: replies wait in .out until the socket
    takes them (POLLOUT); while more than _OUT_MAX bytes wait, the client's requests are not
    read (TCP holds them back), so a client that never reads costs at most one reply more."""

    def __init__(self, channel, sock):
        self.channel = channel
        self.sock = sock
        self.buf = b""
        self.out = b""
        self.skipping = False  # inside a line that was too long, until its newline
        self.since = time.ticks_ms()  # of the last progress either way

    def on_event(self, sock, events):
        if events & 0x18:  # POLLHUP | POLLERR
            return self.close()
        if events & _POLLOUT and self.out:
            try:
                n = sock.send(self.out)
            except OSError as e:
                if e.args[0] != errno.EAGAIN:
                    return self.close()
                n = 0
            if n:
                self.out = self.out[n:]
                self.since = time.ticks_ms()
        if events & _POLLIN and len(self.out) < _OUT_MAX:
            try:
                data = sock.recv(256)
            except OSError as e:
                data = None if e.args[0] == errno.EAGAIN else b""
            if data == b"":
                return self.close()
            if data:
                self.buf += data
                self.since = time.ticks_ms()
        self.serve()
        self.channel.loop.modify(sock, (_POLLIN if len(self.out) < _OUT_MAX else 0) | (_POLLOUT if self.out else 0))
        return False

    def serve(self):
        """Answer the complete lines received, while the replies waiting are few enough."""
        while len(self.out) < _OUT_MAX:
            i = self.buf.find(b"\n")
            if i < 0:
                if len(self.buf) > _LINE_MAX:  # no newline in sight: answer once, drop the rest of the line
                    if not self.skipping:
                        self.out += ("err request longer than %d characters\n" % _LINE_MAX).encode()
                    self.skipping = True
                    self.buf = b""
                return
            line, self.buf = self.buf[:i], self.buf[i + 1:]
            if self.skipping:
                self.skipping = False
                continue
            if len(line) > _LINE_MAX:
                reply = "err request longer than %d characters" % _LINE_MAX
            elif [1 for b in line if b > 126 or (b < 32 and b != 9 and b != 13)]:
                reply = "err requests are ASCII text; " + _USAGE
            else:
                reply = execute(self.channel.model, line.decode())
            self.out += reply.encode() + b"\n"

    def close(self):
        self.channel.clients.remove(self)
        self.channel.loop.remove(self.sock)
        self.sock.close()
        return True


class IoChannel:
    def __init__(self, loop, model, host, port):
        self.loop = loop
        self.model = model
        self.address = (host, port)
        self.clients = []
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo(host, port)[0][-1])
        s.listen(2)
        s.setblocking(False)
        loop.add(s, self)

    def on_event(self, sock, events):
        try:
            c, _ = sock.accept()
        except OSError:
            return False
        if len(self.clients) >= _CLIENTS:  # make room: the client that made no progress for longest
            now = time.ticks_ms()
            oldest = self.clients[0]
            for cl in self.clients:
                if time.ticks_diff(now, cl.since) > time.ticks_diff(now, oldest.since):
                    oldest = cl
            oldest.close()
        c.setblocking(False)
        client = _IoClient(self, c)
        self.clients.append(client)
        self.loop.add(c, client)
        return True
