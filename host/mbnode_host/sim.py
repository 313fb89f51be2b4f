"""`mbnode sim`: run the real firmware on the MicroPython unix port.

The host part only prepares and watches: it checks the user's configuration file (with the
firmware's own mbnode.config and the unix board's rules, so the error names the file), lays
the command line's options over it, writes the result to a temporary file, starts MicroPython
on firmware/main.py and copies its output through. What it adds to the firmware's own messages
is for what only the host can see: a heap too small (it measures the smallest that starts), a
MicroPython that died from a signal, a stop request (SIGTERM or SIGINT become one SIGINT for
the firmware, whose normal way out that is).
"""

import json
import os
import pty
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

from mbnode_host import build, paths
from mbnode_host.clitools import UsageError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5020
OUT_OF_MEMORY = b"mbnode: out of memory while starting"  # firmware/main.py's line
# firmware/mbnode/quote.py's line when the heap ran out while the configuration was read: with a
# heap the simulator chose, that is the heap being too small too.
CONFIG_OUT_OF_MEMORY = b"is too large for the free memory"
HEAP_FLOOR = 4096  # below this MicroPython does not get as far as main.py (it refuses < 700)
PROBE_CEILING = 64 * 1024 * 1024  # the heap measurement gives up above this
SIGINT_GRACE = 1.0  # s: on SIGINT the firmware (same terminal, same Ctrl-C) may stop by itself


def parse_hostport(text, what):
    from mbnode.config import _host_port  # the configuration's own rule (board.io)

    host, sep, port = text.rpartition(":")
    if not _host_port(text):
        raise UsageError("%s %s: allowed HOST:PORT with an IPv4 host (or localhost) and a port 0..65535, "
                         "e.g. 127.0.0.1:5020" % (what, text))
    return host, int(port)


def heap_limit(bits):
    """The largest heap the unix port of this word size takes (its parser reads a C long) that
    this machine also has memory for."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 2 ** 63 - 1
    return min(2 ** (bits - 1) - 1, memory)


def show_size(n):
    return "%dM" % (n >> 20) if n % (1 << 20) == 0 else "%dK" % (n >> 10) if n % 1024 == 0 else "%d" % n


def parse_size(text, bits=32):
    """'32K', '1M', '65536' -> bytes, within what the unix port and this machine can take."""
    t = text.strip().upper()
    mult = {"K": 1024, "M": 1024 * 1024}.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in "KM" else t
    if not digits.isdigit() or int(digits) == 0:
        raise UsageError("--heap %s: allowed a number of bytes with optional K or M, e.g. 32K" % text)
    n = int(digits) * mult
    limit = heap_limit(bits)
    if n > limit:
        why = ("the %d-bit unix port's largest" % bits if limit == 2 ** (bits - 1) - 1 else "this machine's memory")
        raise UsageError("--heap %s: allowed up to %s (%s)" % (text, show_size(limit >> 20 << 20), why))
    return n


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_taken(host, port):
    """Is another program listening on host:port? (bound as the firmware binds, SO_REUSEADDR)"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.errno == 98  # EADDRINUSE; other errors are the firmware's to report
    return False


def check_local(host, what):
    """Refuse, before starting anything, a host address that is not one of this machine's."""
    with socket.socket() as s:
        try:
            s.bind((host, 0))
        except OSError as e:
            if e.errno == 99:  # EADDRNOTAVAIL
                raise OSError("%s %s: cannot listen there: the address is not one of this machine's" % (what, host))


def _valid_port(v):
    return type(v) is int and 0 <= v <= 65535


def effective_config(config_file, tcp, unit, io, rtu=None):
    """The configuration file's object (none: {}) with the command line's values laid over it
    (see overlay()), not yet checked; tcp None: no Modbus TCP (bench/ uses this)."""
    from mbnode import config

    return overlay(config.read(config_file) if config_file else {}, False if tcp is None else tcp, unit, io, rtu)[0]


def overlay(given, tcp, unit, io, rtu=None):
    """The file's value `given` ({} without --config) with the command line laid over it, and
    the keys the command line set. tcp: (host, port) of --tcp, None without it, False with
    --no-tcp; io: (host, port) of --io or None; rtu: dict of rtu keys to set, plus
    "device"/"peer" for the board. The file's tcp.host, tcp.port and board.io count where the
    command line is silent. Whatever in the file is not what it should be stays as it is, for
    the check that follows to name."""
    cfg = json.loads(json.dumps(given))  # a copy
    if type(cfg) is not dict:
        return cfg, set()
    ours = set()
    tcp_cfg = cfg.setdefault("tcp", {})
    host, port = DEFAULT_HOST, None
    if type(tcp_cfg) is dict:
        if tcp is False:
            tcp_cfg["enabled"] = False
            ours.add("tcp.enabled")
        else:
            if tcp:
                host, port = tcp
                ours.update(("tcp.host", "tcp.port"))
            else:
                host, port = tcp_cfg.get("host", DEFAULT_HOST), tcp_cfg.get("port", DEFAULT_PORT)
            if type(host) is str and _valid_port(port):
                if port == 0:
                    port = free_port(host)
                tcp_cfg.update(host=host, port=port)
            if tcp_cfg.get("enabled") is False or not _valid_port(port) or type(host) is not str:
                host, port = DEFAULT_HOST, None
    board = cfg.setdefault("board", {})
    if rtu and type(board) is dict and type(cfg.setdefault("rtu", {})) is dict:
        rtu = dict(rtu)
        board["rtu_device"] = rtu.pop("device")
        board["rtu_peer"] = rtu.pop("peer", "")
        cfg["rtu"].update(enabled=True, **rtu)
        ours.update(["board.rtu_device", "board.rtu_peer", "rtu.enabled"] + ["rtu." + k for k in rtu])
    if unit is not None:
        cfg["unit_id"] = unit
        ours.add("unit_id")
    if type(board) is not dict:
        return cfg, ours
    if io is None and "io" in board:
        try:
            io = board["io"] and parse_hostport(board["io"], "board.io")
        except (ValueError, TypeError, AttributeError):
            return cfg, ours  # the check says what is wrong with it
    else:
        ours.add("board.io")
    if io is None:
        # The default: next to the TCP port, or any free port when that one is taken.
        io_host = host if host != "0.0.0.0" else "127.0.0.1"
        io = (io_host, port + 1 if port and port < 65535 and not port_taken(io_host, port + 1) else 0)
    if io:
        board["io"] = "%s:%d" % (io[0], io[1] or free_port(io[0]))
    return cfg, ours


def check_config(cfg, config_file, ours):
    """The whole configuration, checked as the firmware checks it (the unix board's rules). An
    error names the file, or the command line when the key is one the command line set."""
    from mbnode import config
    from mbnode_host import boards

    try:
        config.validate(cfg, *boards.rules("unix"))
    except config.ConfigError as e:
        text = str(e)[len("config: "):]
        source = config_file if config_file and text.split(" ", 1)[0] not in ours else "command line"
        raise config.ConfigError("config: %s: %s" % (source, text))


def fallback(cfg, tcp, unit, io, rtu):
    """--keep-serving: the defaults the firmware serves when it refuses the configuration, as a
    board serves its own: the built-in defaults with the TCP address and the control channel
    that overlay() settled on for `cfg` (where valid), --unit and the RTU line."""
    t = cfg.get("tcp") if type(cfg) is dict else None
    if tcp is not False and type(t) is dict and type(t.get("host")) is str and _valid_port(t.get("port")):
        tcp = (t["host"], t["port"])
    b = cfg.get("board") if type(cfg) is dict else None
    if type(b) is dict and type(b.get("io")) is str and b["io"]:
        try:
            io = parse_hostport(b["io"], "board.io")
        except (ValueError, TypeError):
            pass
    return overlay({}, tcp, unit, io, rtu)[0]


def command(cfg_path, bits=32, heap="256K", mpy=False):
    """argv and environment that start the firmware with the configuration at cfg_path; heap in
    bytes or as --heap takes it ("256K")."""
    binary = paths.micropython(bits)
    if isinstance(heap, str):
        heap = parse_size(heap, bits)
    if mpy:
        out = build.compile_mpy("unix", paths.CACHE / ("mpy-unix-%d" % bits), build.UNIX_ARCH[bits])
        path = [str(out)]
        script = str(out / "main.py")
    else:
        path = [str(paths.BOARDS / "unix"), str(paths.FIRMWARE)]
        script = str(paths.FIRMWARE / "main.py")
    # .cache/lib: umqtt.simple for the MQTT bridge (make setup fetches it; mip on a board).
    env = dict(os.environ, MICROPYPATH=":".join([".frozen"] + path + [str(paths.CACHE / "lib")]))
    return [binary, "-X", "heapsize=%d" % heap, script, str(cfg_path)], env


def make_pty():
    """A pty pair for --rtu pty: (firmware's end as an open non-blocking fd, client end's path,
    client end fd). The client end stays open here, raw, so the line never hangs up."""
    firmware_fd, client_fd = pty.openpty()
    tty.setraw(client_fd)
    os.set_blocking(firmware_fd, False)
    return firmware_fd, os.ttyname(client_fd), client_fd


def rtu_options(args):
    """The rtu overrides of the command line, or None without --rtu."""
    if not args.rtu:
        return None
    rtu = {}
    for key in ("baud", "parity", "stopbits"):
        if getattr(args, key) is not None:
            rtu[key] = getattr(args, key)
    return rtu


class Stop:
    """SIGTERM and SIGINT while the simulator runs: one SIGINT for the firmware. A SIGINT from
    the terminal (Ctrl-C) reaches the firmware too, being in the same process group; it gets
    SIGINT_GRACE to stop by itself, because MicroPython quits with status 1 on a second SIGINT
    that comes before it has handled the first."""

    def __init__(self):
        self.child = None
        self.asked = None  # monotonic time of the first stop request
        self.grace = 0.0
        self.sent = False
        # A signal wakes watch()'s select (the handler cannot shorten a wait already running).
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.saved_fd = signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        self.saved = {s: signal.signal(s, self.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(self, signum, frame):
        if self.asked is None:
            self.asked = time.monotonic()
            self.grace = SIGINT_GRACE if signum == signal.SIGINT else 0.0
        self.poll()

    def poll(self):
        """Send the SIGINT when it is due; the time until then (None: nothing to wait for)."""
        if self.asked is None or self.sent or self.child is None:
            return None
        left = self.asked + self.grace - time.monotonic()
        if left <= 0:
            self.sent = True
            if self.child.poll() is None:
                self.child.send_signal(signal.SIGINT)
            return None
        return left

    def restore(self):
        for s, handler in self.saved.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(self.saved_fd)
        self.wake_r.close()
        self.wake_w.close()


def watch(child, stop, rename=None):
    """Copy the firmware's stdout and stderr through until both close; stderr is held back until
    the ready line (what comes before it may be replaced by the host's own line; rename: (the
    temporary configuration's path, the user's file), replaced in it). Returns (ready line seen,
    held stderr bytes, stderr bytes written after the stop request)."""
    sel = selectors.DefaultSelector()
    sel.register(child.stdout, selectors.EVENT_READ, "out")
    sel.register(child.stderr, selectors.EVENT_READ, "err")
    sel.register(stop.wake_r, selectors.EVENT_READ, "wake")
    ready = False
    pending = b""
    held = b""
    after_stop = b""
    while len(sel.get_map()) > 1:
        timeout = stop.poll()
        for key, _ in sel.select(timeout):
            if key.data == "wake":
                try:
                    stop.wake_r.recv(64)
                except BlockingIOError:
                    pass
                continue
            data = os.read(key.fileobj.fileno(), 65536)
            if not data:
                sel.unregister(key.fileobj)
                continue
            if key.data == "out":
                if not ready:
                    pending += data
                    ready = any(line.startswith(b"ready") for line in pending.split(b"\n")[:-1])
                    if ready:
                        pending = b""
                        if held:
                            if rename:
                                held = held.replace(*rename)
                            sys.stderr.buffer.write(held)
                            sys.stderr.buffer.flush()
                            held = b""
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            elif not ready:
                held += data
            else:
                if stop.asked is not None:
                    after_stop += data
                sys.stderr.buffer.write(data)
                sys.stderr.buffer.flush()
    sel.close()
    return ready, held, after_stop


def start(argv, env, keep_fd=None):
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=[keep_fd] if keep_fd is not None else [])


def starts_with(cfg, bits, heap, mpy, timeout=30.0):
    """Does the firmware start (print its ready line) with this configuration and heap? Run on
    free ports, with a pty of its own for an RTU pty; stopped again at once."""
    cfg = json.loads(json.dumps(cfg))
    if cfg.get("tcp", {}).get("enabled", True):
        cfg["tcp"]["port"] = free_port(cfg["tcp"]["host"])
    board = cfg.get("board", {})
    if board.get("io"):
        io_host = board["io"].rsplit(":", 1)[0]
        board["io"] = "%s:%d" % (io_host, free_port(io_host))
    fds = []
    if board.get("rtu_device", "").startswith("fd:"):
        firmware_fd, peer, client_fd = make_pty()
        fds = [firmware_fd, client_fd]
        board.update(rtu_device="fd:%d" % firmware_fd, rtu_peer=peer)
    with tempfile.TemporaryDirectory(prefix="mbnode-heap-") as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(cfg))
        argv, env = command(cfg_path, bits, heap, mpy)
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 pass_fds=fds[:1])
        for fd in fds:
            os.close(fd)
        ok = False
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(child.stdout, selectors.EVENT_READ)
        out = b""
        while time.monotonic() < deadline:
            if sel.select(0.2):
                data = os.read(child.stdout.fileno(), 4096)
                out += data
                if b"ready" in out:
                    ok = True
                    break
                if not data:
                    break
        sel.close()
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()
    return ok


def smallest_heap(cfg, bits, mpy, failed):
    """The smallest heap, to 1K, that the firmware starts with: above `failed` (which did not),
    found by starting it (about ten times). None when even PROBE_CEILING does not do."""
    low = failed  # does not start
    high = max(256 * 1024, 2 * low)
    while not starts_with(cfg, bits, high, mpy):
        low = high
        high *= 2
        if high > min(PROBE_CEILING, heap_limit(bits)):
            return None
    while high - low > 1024:
        mid = (low + high) // 2 // 1024 * 1024
        if mid <= low:
            break
        if starts_with(cfg, bits, mid, mpy):
            high = mid
        else:
            low = mid
    return high


def heap_too_small(cfg, args, heap):
    need = smallest_heap(cfg, args.bits, args.mpy, heap)
    how = "%d-bit unix port, %s" % (args.bits, "firmware as .mpy" if args.mpy else "firmware from source")
    if need is None:
        return "--heap %s is too small, and so is %s (%s)" % (args.heap, show_size(PROBE_CEILING), how)
    return ("--heap %s is too small for this configuration: it starts with %s or more (measured just now; %s)"
            % (args.heap, show_size(-(-need // 1024) * 1024), how))


def run(args):
    from mbnode import config

    heap = parse_size(args.heap, args.bits)
    keep = getattr(args, "keep_serving", False)
    try:
        given = config.read(args.config) if args.config else {}
    except config.ConfigError:
        if not keep:
            raise
        given = None  # the firmware reads the file itself, refuses it and serves the fallback
    rtu = rtu_options(args)
    keep_fds = []
    if rtu is not None:
        if args.rtu == "pty":
            firmware_fd, peer, client_fd = make_pty()
            keep_fds = [firmware_fd, client_fd]
            rtu.update(device="fd:%d" % firmware_fd, peer=peer)
        else:
            rtu["device"] = args.rtu
    tcp = False if args.no_tcp else parse_hostport(args.tcp, "--tcp") if args.tcp else None
    io = parse_hostport(args.io, "--io") if args.io else None
    cfg, ours = overlay({} if given is None else given, tcp, args.unit, io, rtu)
    served = cfg  # what the firmware is given
    defaults = None
    if keep:
        defaults = fallback(cfg, tcp, args.unit, io, rtu)
        try:
            check_config(cfg, args.config, ours)
        except config.ConfigError:
            cfg = defaults  # what is checked below (the TCP address); the firmware says the refusal
    else:
        check_config(cfg, args.config, ours)
    if type(cfg["tcp"]) is dict and cfg["tcp"].get("enabled", True) is not False:
        check_local(cfg["tcp"]["host"], "--tcp" if args.tcp else "tcp.host")
    if heap < HEAP_FLOOR:
        raise ValueError(heap_too_small(cfg, args, heap))
    stop = Stop()
    try:
        with tempfile.TemporaryDirectory(prefix="mbnode-sim-") as tmp:
            cfg_path = Path(tmp) / "config.json"
            if keep:
                Path(tmp, "defaults.json").write_text(json.dumps(defaults))
            if given is None:  # --keep-serving, a file the host could not read: the firmware's turn
                cfg_path = Path(args.config).resolve()
            else:
                cfg_path.write_text(json.dumps(served))
            argv, env = command(cfg_path, args.bits, heap, args.mpy)
            if keep:
                env["MBNODE_DEFAULTS"] = str(Path(tmp, "defaults.json"))  # boards/unix/board.py
            if stop.asked is not None:
                return 0
            stop.child = child = start(argv, env, keep_fds[0] if keep_fds else None)
            if keep_fds:
                os.close(keep_fds[0])  # the firmware has its end now
            rename = None
            if keep and given is not None and args.config:  # the refusal names the user's file
                rename = (str(cfg_path).encode(), str(args.config).encode())
            ready, held, after_stop = watch(child, stop, rename)
            code = child.wait()
    finally:
        stop.restore()
    if stop.asked is not None:
        # The normal way out: SIGINT ends the firmware's loop (status 0; 130 or the signal when
        # it came before MicroPython took SIGINT over; 1 and nothing said on a second SIGINT).
        # SIGTERM too: sent to the whole process group (timeout(1), a service manager) it reaches
        # MicroPython itself, which has no handler for it.
        if code in (0, 130, -signal.SIGINT, -signal.SIGTERM) or (code == 1 and not after_stop.strip() and (
                not held.strip() or not ready and b"KeyboardInterrupt" in held)):  # stopped while importing
            return 0
    if not ready and (code == 3 or OUT_OF_MEMORY in held or b"MemoryError" in held
                      or CONFIG_OUT_OF_MEMORY in held):
        raise ValueError(heap_too_small(cfg, args, heap))
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        said = held.decode(errors="replace").strip()
        raise RuntimeError("MicroPython (%s) stopped with %s%s%s" % (
            argv[0], name, "" if ready else " before it served", ": " + said.splitlines()[-1] if said else ""))
    if not ready:
        sys.stderr.buffer.write(held)
        sys.stderr.buffer.flush()
    return code
