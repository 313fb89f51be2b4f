"""Unix board: the simulator's I/O lives in RAM, its field side behind a line protocol.

Every channel of the map is present unless the configuration says otherwise. The control
channel (docs/simulator.md) lets tests and users set inputs (DI, AI) and read outputs (DO, AO)
of the running firmware; it is not the Modbus hot path, so it may allocate.
"""

import socket

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
        _state["io"] = IoChannel(loop, model, host, int(port))


def describe():
    io = _state.get("io")
    return ["io %s:%d" % io.address] if io else []


def open_rtu(rtu, cfg):
    """The serial port for Modbus RTU: board.rtu_device is a tty path (set up raw with the
    configured line settings) or "fd:N", an open pty the simulator hands over as it is.
    board.rtu_peer, when set, is the name shown for it (the pty end clients open)."""
    from ttyport import TtyPort

    return TtyPort(cfg["rtu_device"], cfg["rtu_peer"], rtu["baud"], rtu["parity"], rtu["stopbits"])


def execute(model, line):
    """One control request -> reply text (without newline)."""
    words = line.split()
    try:
        if len(words) < 3 or words[0] not in ("get", "set") or words[1] not in _TABLES:
            raise ValueError("usage: get TABLE ADDR [COUNT] | set TABLE ADDR V1 [V2 ...]; "
                             "TABLE: do di ao ai mem")
        kind, table, size = _TABLES[words[1]]
        first = int(words[2], 0)
        if words[0] == "get":
            count = int(words[3], 0) if len(words) > 3 else 1
            values = None
        else:
            values = [int(w, 0) for w in words[3:]]
            count = len(values)
            if not count:
                raise ValueError("set needs at least one value")
        low = 1 if kind == "mem" else 0
        if count < 1 or first < low or first + count - 1 > size - 1 + low:
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


class _IoClient:
    def __init__(self, channel, sock):
        self.channel = channel
        self.sock = sock
        self.buf = b""

    def on_event(self, sock, events):
        try:
            data = sock.recv(256)
        except OSError:
            data = b""
        if not data or events & 0x18:
            self.channel.loop.remove(sock)
            sock.close()
            return True
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            reply = execute(self.channel.model, line.decode())
            sock.setblocking(True)
            sock.write((reply + "\n").encode())
            sock.setblocking(False)
        if len(self.buf) > 1024:
            self.buf = b""
        return False


class IoChannel:
    def __init__(self, loop, model, host, port):
        self.loop = loop
        self.model = model
        self.address = (host, port)
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
        c.setblocking(False)
        self.loop.add(c, _IoClient(self, c))
        return True
