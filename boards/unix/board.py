"""Unix board: the simulator's I/O lives in RAM, its field side behind a line protocol.

Every channel of the map is present unless the configuration says otherwise. The control
channel (docs/simulator.md) lets tests and users set inputs (DI, AI) and read outputs (DO, AO)
of the running firmware and read its heap; it is not the Modbus hot path, so it may allocate,
but it never blocks the event loop. Its connections and `heap` are here; the requests that read
or set I/O are in simcontrol.py, loaded on the first one.

The simulator's smallest heap counts the names this module brings: the unix port interns every
identifier, module name and module path in qstr pools that grow by doubling (300 names fill four
pools; the 301st takes a fifth of 320 entries, 2.4 KB). Hence const() numbers and reused
attribute names (conns, tx) below.
"""

import socket

try:
    from micropython import const
except ImportError:  # CPython: the host tools read this module for its facts and schema
    def const(x):
        return x

NAME = "unix"
PORT = "unix"  # the MicroPython port
MICROPYTHON_BOARD = "standard"  # the unix port's variant that .cache/bin/micropython-* are
CHIP = None  # no pins
MPY_ARCH = "x64"  # the 64-bit build; the 32-bit one is x86 (mbnode sim --bits 32)
WIFI = False
KEEP_SERVING = False  # a bad configuration exits with status 2 (but with `mbnode sim --keep-serving`: config_rules)


START_ONLY = ("config_rules", "start", "describe", "open_rtu", "field")  # dropped by app.run once built


def config_rules():
    """(schema of the board section, default configuration, check): the global defaults; with
    `mbnode sim --keep-serving`, the defaults in the file MBNODE_DEFAULTS names (the command
    line's --tcp, --io, --rtu, --unit over the global ones), and a refused configuration starts
    them, as a board would (KEEP_SERVING). All three are board_config.py's, loaded for the
    configuration check only (and unloaded again with config.py)."""
    global KEEP_SERVING
    from board_config import rules

    KEEP_SERVING, answer = rules()
    return answer


# model, loop; "field": simfield.Field with an io section; "words": the ready line's, until describe()
_state = {}


def start(loop, model, cfg):
    _state["model"] = model
    _state["loop"] = loop
    import os

    if os.getenv("MBNODE_STOP_AT"):  # tests only: a save held at a named step (simsave.py)
        from simsave import hold

        hold()
    if cfg["io"]:
        host, port = cfg["io"].rsplit(":", 1)
        try:
            IoChannel(loop, model, host, int(port))
        except OSError as e:
            from mbnode.listenerror import cannot_listen

            cannot_listen("io", host, int(port), e)
        _state["words"] = ["io %s:%d" % (host, int(port))]  # for describe(), which takes them


def describe():
    return _state.pop("words", [])


_REBOOT_STATUS = const(4)  # the settings block's reboot on the simulator (docs/simulator.md)


def reboot():
    """The settings block's reboot command: the simulator exits with status 4 (`mbnode sim`
    passes it on; whoever runs it may start it again)."""
    import sys

    print("mbnode: reboot requested; the simulator exits with status %d" % _REBOOT_STATUS)
    sys.exit(_REBOOT_STATUS)


def field():
    """The field side of the io section's modes (simfield.py, loaded only then), as the modes
    set it up (simfieldstart.py, start-up only)."""
    from simfieldstart import FieldSetup

    setup = FieldSetup(_state["loop"], _state["model"])
    _state["field"] = setup.field
    return setup


def open_rtu(rtu, cfg, key="rtu"):
    """The serial port of line `key` ("rtu", "rtu2"): board.<key>_device is a tty path (set up
    raw with the line's settings) or "fd:N", a descriptor the process inherited (mbnode sim
    --rtu pty); board.<key>_peer, when set, is the name shown for it (the pty end clients open)."""
    from ttyopen import open_tty

    return open_tty(cfg[key + "_device"], cfg[key + "_peer"], rtu["baud"], rtu["parity"], rtu["stopbits"])


def execute(model, line):
    """One control request (bytes without the newline; None: one longer than _LINE_MAX) -> reply
    text (without newline). `heap` is answered here, without loading anything; every other
    request, and the refusal of one too long or not ASCII, by simcontrol.py, loaded on the first
    one (docs/simulator.md)."""
    if line is not None and line.split() == [b"heap"]:
        import gc

        gc.collect()
        return "ok %d %d" % (gc.mem_alloc(), gc.mem_free())
    from simcontrol import execute as control

    return control(model, line, _state.get("field"))


_POLLIN = const(1)
_POLLOUT = const(4)
_EAGAIN = const(11)
_LINE_MAX = const(1024)  # characters of a request; a longer one is answered with an error
_OUT_MAX = const(4096)  # bytes of replies waiting for a client before its requests wait too
_CLIENTS = const(4)  # connections at once; a fifth replaces the oldest


class _IoClient:
    """One control connection. Never blocks the loop: replies wait in .tx until the socket
    takes them (POLLOUT); while more than _OUT_MAX bytes wait, the client's requests are not
    read (TCP holds them back), so a client that never reads costs at most one reply more."""

    def __init__(self, channel, sock):
        self.channel = channel
        self.sock = sock
        self.buf = b""
        self.tx = b""
        self.skip = False  # inside a request that was too long, until its newline

    def on_event(self, sock, events):
        if events & 0x18:  # POLLHUP | POLLERR
            self.close()
            return
        try:
            if events & _POLLOUT:
                self.tx = self.tx[sock.send(self.tx):]
            if events & _POLLIN:
                data = sock.recv(256)
                if not data:
                    self.close()
                    return
                self.buf += data
        except OSError as e:
            if e.args[0] != _EAGAIN:
                self.close()
                return
        # Answer the complete lines received, while the replies waiting are few enough.
        while len(self.tx) < _OUT_MAX:
            i = self.buf.find(b"\n")
            if i < 0:
                if len(self.buf) <= _LINE_MAX:
                    break
                # Too long, and no end yet: answered now; what follows up to its end is dropped.
                skipping, self.skip, self.buf = self.skip, True, b""
            else:
                line = self.buf[:i]
                self.buf = self.buf[i + 1:]
                skipping, self.skip = self.skip, False
            if skipping:  # the end of a line already answered
                continue
            reply = execute(self.channel.model, None if i < 0 or i > _LINE_MAX else line)
            self.tx += reply.encode() + b"\n"
        self.channel.loop.modify(sock, (_POLLIN if len(self.tx) < _OUT_MAX else 0) | (_POLLOUT if self.tx else 0))

    def on_error(self, sock):
        # The loop's call after on_event raised (MemoryError in a heap too small): it closes.
        self.close()

    def close(self):
        self.channel.conns.remove(self)
        self.channel.loop.remove(self.sock)
        self.sock.close()


class IoChannel:
    def __init__(self, loop, model, host, port):
        self.loop = loop
        self.model = model
        self.conns = []
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
            return
        if len(self.conns) >= _CLIENTS:
            self.conns[0].close()
        c.setblocking(False)
        client = _IoClient(self, c)
        self.conns.append(client)
        self.loop.add(c, client)
