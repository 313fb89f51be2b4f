"""Shared bench plumbing: where things are, starting/stopping servers, /proc CPU, tables.

Every process the bench starts is a `Server` (or a plain Popen inside one) and is stopped by the
code that started it, in a finally block. Only 127.0.0.1 is used.
"""

import argparse
import atexit
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "host"))

from mbnode_host import build, paths, sim  # noqa: E402

WORK = paths.CACHE / "bench"  # downloads, .mpy builds, scratch configs (git-ignored)
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- tools ------------------------------------------------------------------------------------

def micropython(bits):
    """The unix port of the given word size: the set-up's build, else $MICROPYTHON32/64."""
    try:
        return paths.micropython(bits)
    except paths.MissingTool:
        alt = os.environ.get("MICROPYTHON%d" % bits)
        if alt and Path(alt).exists():
            return alt
        raise


def mpy_cross():
    try:
        return paths.mpy_cross()
    except paths.MissingTool:
        alt = os.environ.get("MPY_CROSS")
        if alt and Path(alt).exists():
            return alt
        raise


_MPY_BUILDS = {}


def _private():
    """A scratch directory of this bench run, removed when it exits: two runs (or a run and
    someone's experiment in .cache/bench) must not rebuild each other's .mpy files."""
    d = WORK / ("run-%d" % os.getpid())
    if not d.exists():
        d.mkdir(parents=True)
        atexit.register(shutil.rmtree, d, True)
    return d


def firmware_mpy(bits):
    """The firmware compiled to .mpy for the unix port (once per bench run)."""
    if bits not in _MPY_BUILDS:
        tool_dir = str(Path(mpy_cross()).parent)  # build.py looks in .cache/bin, then on PATH
        os.environ["PATH"] = tool_dir + os.pathsep + os.environ.get("PATH", "")
        _MPY_BUILDS[bits] = build.compile_mpy("unix", _private() / ("mpy-unix-%d" % bits), build.UNIX_ARCH[bits])
    return _MPY_BUILDS[bits]


LIB = paths.CACHE / "lib"  # umqtt/simple.py, fetched by `make setup` (tools/setup.sh)
_LIB_MPY = {}


def umqtt_path(bits, mpy):
    """The directory holding umqtt/: .cache/lib as source, or for .mpy runs umqtt/simple.py
    compiled by the same mpy-cross (a board gets .mpy from `mpremote mip install umqtt.simple`),
    so the bridge's heap figure does not include compiling umqtt at import."""
    if not (LIB / "umqtt" / "simple.py").exists():
        raise RuntimeError("%s missing: run `make setup`" % (LIB / "umqtt" / "simple.py"))
    if not mpy:
        return LIB
    if bits not in _LIB_MPY:
        out = _private() / ("lib-mpy-unix-%d" % bits)
        (out / "umqtt").mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross(), "-march=" + build.UNIX_ARCH[bits], "-s", "umqtt/simple.py",
                        "-o", str(out / "umqtt" / "simple.mpy"), str(LIB / "umqtt" / "simple.py")],
                       check=True)
        _LIB_MPY[bits] = out
    return _LIB_MPY[bits]


def free_port():
    return sim.free_port(HOST)


# ---- processes --------------------------------------------------------------------------------

class Server:
    """A server process we started: .pid, .port, .cpu_ticks(), .pause()/.resume(), .stop()."""

    def __init__(self, name, argv, env=None, port=None, ready_prefix="ready", timeout=20):
        self.name = name
        self.port = port
        # stderr goes to a file: a chatty server must never block on a full pipe.
        WORK.mkdir(parents=True, exist_ok=True)
        self.errfile = tempfile.NamedTemporaryFile("w+", dir=WORK, prefix="stderr-%s-" % name,
                                                   suffix=".log", delete=False)
        try:
            self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                         stderr=self.errfile, stdin=subprocess.DEVNULL)
        except OSError:
            self.errfile.close()
            os.unlink(self.errfile.name)
            raise
        self.pid = self.proc.pid
        self._out = b""
        try:
            self.ready = self.wait_line(ready_prefix, timeout)
        except BaseException:
            self.stop()
            raise

    def wait_line(self, prefix, timeout):
        """The next stdout line starting with prefix (earlier lines are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._out:
                line, self._out = self._out.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                if text.startswith(prefix):
                    return text
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("%s: no %r line within %ss" % (self.name, prefix, timeout))
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError("%s exited (%s) before a %r line: %s" % (
                        self.name, self.proc.wait(timeout=5), prefix, self.stderr()[-800:]))
                self._out += chunk

    def output(self, timeout):
        """Everything it prints until it exits (at most timeout seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                self._out += chunk
        text, self._out = self._out.decode(errors="replace"), b""
        return text

    def stderr(self):
        self.errfile.flush()
        self.errfile.seek(0)
        return self.errfile.read()

    def alive(self):
        return self.proc.poll() is None

    def cpu_ticks(self):
        return cpu_ticks(self.pid)

    def pause(self):
        if self.alive():
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)

    def stop(self):
        if self.errfile.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.errfile.close()
        os.unlink(self.errfile.name)
        return self.proc.returncode


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks, from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def ticks_to_us(ticks):
    return ticks * 1e6 / CLK_TCK


def start_mbnode(bits=32, heap="128K", mpy=False, io=True, timeout=20, config=None):
    """The firmware on the unix port, launched directly (the pid is MicroPython itself).

    Same argv and MICROPYPATH as `mbnode sim` (host/mbnode_host/sim.py command()). config: more
    configuration sections, merged one level deep (e.g. {"mqtt": {...}}); with an "mqtt"
    section umqtt.simple is put on the path as well (umqtt_path())."""
    cfg = sim.effective_config(None, (HOST, 0), None, (HOST, 0) if io else None)
    if not io:
        cfg["board"]["io"] = ""
    for key, value in (config or {}).items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    WORK.mkdir(parents=True, exist_ok=True)
    cfg_path = WORK / ("config-%d-%d.json" % (os.getpid(), cfg["tcp"]["port"]))
    cfg_path.write_text(json.dumps(cfg))
    heap_bytes = sim.parse_size(str(heap))
    if mpy:
        out = firmware_mpy(bits)
        path, script = [str(out)], str(out / "main.py")
    else:
        path = [str(paths.BOARDS / "unix"), str(paths.FIRMWARE)]
        script = str(paths.FIRMWARE / "main.py")
    if "mqtt" in cfg:
        path.append(str(umqtt_path(bits, mpy)))
    env = dict(os.environ, MICROPYPATH=":".join([".frozen"] + path))
    argv = [micropython(bits), "-X", "heapsize=%d" % heap_bytes, script, str(cfg_path)]
    try:
        srv = Server("mbnode-%d" % bits, argv, env=env, timeout=timeout)
    finally:
        cfg_path.unlink()
    fields = srv.ready.split()
    srv.port = int(dict(zip(fields[1::2], fields[2::2]))["tcp"].rsplit(":", 1)[1])
    return srv


# ---- numbers and tables -----------------------------------------------------------------------

def median(values):
    return statistics.median(values) if values else None


def spread(values, fmt="%.0f"):
    """'median (min-max)' or 'fail'."""
    if not values:
        return "fail"
    return (fmt + " (" + fmt + "-" + fmt + ")") % (median(values), min(values), max(values))


def table(title, header, rows, note=None):
    """Print a plain-text table with columns sized to fit."""
    cols = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print()
    print(title)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print(line)
    for r in cols[1:]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(line)
    if note:
        for n in note if isinstance(note, (list, tuple)) else [note]:
            print(n)
    sys.stdout.flush()


def verdict(ok):
    return "PASS" if ok else "MISS"


# ---- a section's parts and its command line (bench/rtu.py, bench/mqtt.py) ----------------------

def run_parts(section, steps, parts):
    """Run steps[key]() for each key in parts; summary rows (target, measured, verdict). A
    part that raises becomes an ERROR row and the others still run."""
    summary = []
    for key in parts:
        t0 = time.monotonic()
        try:
            summary += steps[key]()
        except Exception as e:  # noqa: BLE001 - report it, run the other parts
            summary.append(("(%s%s)" % (section, key), "ERROR %s: %s" % (type(e).__name__, e), "ERROR"))
            print("\npart (%s%s) failed: %s: %s" % (section, key, type(e).__name__, e))
        print("[part (%s%s): %.0f s]" % (section, key, time.monotonic() - t0))
        sys.stdout.flush()
    return summary


def section_main(argv, doc, title, all_parts, count, count_help, banner, run):
    """The command line of a section run alone: --parts, --count; run(parts, count) -> rows.
    Prints the summary; exit status 1 when a row is an ERROR."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--parts", default=all_parts, help="which parts to run, any of %s" % ", ".join(all_parts))
    p.add_argument("--count", type=int, default=count, help=count_help)
    args = p.parse_args(argv)
    if args.count < 1 or set(args.parts) - set(all_parts):
        p.error("--count must be at least 1 and --parts made of %s" % ", ".join(all_parts))
    start = time.monotonic()
    print(banner)
    summary = run(args.parts, args.count)
    table(title, ["target", "measured", "verdict"], summary, note="total runtime %.0f s" % (time.monotonic() - start))
    return 1 if any(r[2] == "ERROR" for r in summary) else 0

