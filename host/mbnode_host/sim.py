"""`mbnode sim`: run the real firmware on the MicroPython unix port."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
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


def effective_config(config_file, tcp, unit, io):
    """The user's configuration with the command-line overrides applied."""
    cfg = {}
    if config_file:
        with open(config_file) as f:
            cfg = json.load(f)
    host, port = tcp
    if port == 0:
        port = free_port(host)
    cfg.setdefault("tcp", {}).update(host=host, port=port)
    if unit is not None:
        cfg["unit_id"] = unit
    io_host, io_port = io if io else (host if host != "0.0.0.0" else "127.0.0.1", port + 1)
    if io_port == 0:
        io_port = free_port(io_host)
    cfg.setdefault("board", {})["io"] = "%s:%d" % (io_host, io_port)
    return cfg


def command(cfg_path, bits=32, heap="128K", mpy=False):
    """argv and environment that start the firmware with the configuration at cfg_path."""
    binary = paths.micropython(bits)
    heap_bytes = parse_size(heap)
    if mpy:
        out = build.build("unix-%d" % bits, paths.CACHE / ("mpy-unix-%d" % bits))
        path = [str(out)]
        script = str(out / "main.py")
    else:
        path = [str(paths.BOARDS / "unix"), str(paths.FIRMWARE)]
        script = str(paths.FIRMWARE / "main.py")
    env = dict(os.environ, MICROPYPATH=":".join([".frozen"] + path))
    return [binary, "-X", "heapsize=%d" % heap_bytes, script, str(cfg_path)], env


def run(args):
    cfg = effective_config(args.config, parse_hostport(args.tcp, "--tcp"), args.unit,
                           parse_hostport(args.io, "--io") if args.io else None)
    with tempfile.TemporaryDirectory(prefix="mbnode-sim-") as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(cfg))
        argv, env = command(cfg_path, args.bits, args.heap, args.mpy)
        child = subprocess.Popen(argv, env=env)

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
