"""`mbnode sim`: run the real firmware on the MicroPython unix port."""

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import tempfile
import tty
from pathlib import Path

from mbnode_host import build, paths


def parse_hostport(text, what):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("%s %r: expected HOST:PORT, e.g. 127.0.0.1:5020" % (what, text))
    return host, int(port)


def parse_size(text):
    """'32K', '1M', '65536' -> bytes."""
    t = text.strip().upper()
    mult = {"K": 1024, "M": 1024 * 1024}.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in "KM" else t
    if not digits.isdigit() or int(digits) == 0:
        raise ValueError("heap size %r: expected a number of bytes with optional K or M, e.g. 32K" % text)
    return int(digits) * mult


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def effective_config(config_file, tcp, unit, io, rtu=None):
    """The user's configuration with the command-line overrides applied. tcp: (host, port) or
    None for no Modbus TCP; rtu: dict of rtu keys to set, plus "device"/"peer" for the board."""
    cfg = {}
    if config_file:
        with open(config_file) as f:
            cfg = json.load(f)
    if tcp is None:
        cfg.setdefault("tcp", {})["enabled"] = False
        host, port = "127.0.0.1", None
    else:
        host, port = tcp
        if port == 0:
            port = free_port(host)
        cfg.setdefault("tcp", {}).update(host=host, port=port)
    if rtu:
        rtu = dict(rtu)
        board = cfg.setdefault("board", {})
        board["rtu_device"] = rtu.pop("device")
        board["rtu_peer"] = rtu.pop("peer", "")
        cfg.setdefault("rtu", {}).update(enabled=True, **rtu)
    if unit is not None:
        cfg["unit_id"] = unit
    # Default control channel: next to the TCP port, or any free port without TCP.
    io_host, io_port = io if io else (host if host != "0.0.0.0" else "127.0.0.1", port + 1 if port else 0)
    if io_port == 0:
        io_port = free_port(io_host)
    cfg.setdefault("board", {})["io"] = "%s:%d" % (io_host, io_port)
    return cfg


def command(cfg_path, bits=32, heap="256K", mpy=False):
    """argv and environment that start the firmware with the configuration at cfg_path."""
    binary = paths.micropython(bits)
    heap_bytes = parse_size(heap)
    if mpy:
        out = build.compile_mpy("unix", paths.CACHE / ("mpy-unix-%d" % bits), build.UNIX_ARCH[bits])
        path = [str(out)]
        script = str(out / "main.py")
    else:
        path = [str(paths.BOARDS / "unix"), str(paths.FIRMWARE)]
        script = str(paths.FIRMWARE / "main.py")
    # .cache/lib: umqtt.simple for the MQTT bridge (make setup fetches it; mip on a board).
    env = dict(os.environ, MICROPYPATH=":".join([".frozen"] + path + [str(paths.CACHE / "lib")]))
    return [binary, "-X", "heapsize=%d" % heap_bytes, script, str(cfg_path)], env


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


def run(args):
    rtu = rtu_options(args)
    keep_fds = []
    if rtu is not None:
        if args.rtu == "pty":
            firmware_fd, peer, client_fd = make_pty()
            keep_fds = [firmware_fd, client_fd]
            rtu.update(device="fd:%d" % firmware_fd, peer=peer)
        else:
            rtu["device"] = args.rtu
    cfg = effective_config(args.config, None if args.no_tcp else parse_hostport(args.tcp, "--tcp"),
                           args.unit, parse_hostport(args.io, "--io") if args.io else None, rtu)
    with tempfile.TemporaryDirectory(prefix="mbnode-sim-") as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(cfg))
        argv, env = command(cfg_path, args.bits, args.heap, args.mpy)
        child = subprocess.Popen(argv, env=env, pass_fds=keep_fds[:1])
        if keep_fds:
            os.close(keep_fds[0])  # the firmware has its end now

        def stop(signum, frame):
            child.send_signal(signal.SIGINT)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while True:
            try:
                code = child.wait(timeout=None)
                break
            except subprocess.TimeoutExpired:
                continue
    sys.stdout.flush()
    # SIGINT ends the firmware's loop: that is the normal way out, not a failure.
    return 0 if code in (0, -signal.SIGINT, 130) else code
