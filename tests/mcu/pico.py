"""The emulated Raspberry Pi Pico (tests/mcu/emu/pico.mjs) from Python, for the tests and bench/.

    with Pico(firmware=stock_firmware(), workdir=tmp_path) as pico:
        pico.wait_cdc(rb">>> ")                       # the REPL prompt on the USB CDC
        pico.mpremote("exec", "print(1)")              # a real mpremote over socket://
        with pico.open_uart(baudrate=19200) as port:   # UART0, bytes paced in simulated time
            ...
        pico.uart_trace()                              # every character on the line, timestamped
        pico.save_flash(tmp_path / "flash.bin")        # then Pico(flash=...) is a power cycle

The runner runs in its own process group and is killed with it if it does not stop in time; it
also stops by itself at its wall-clock time limit or when this process goes away (stdin closes).
Every time is simulated time in ns (`sim_ns`, `t_ns`, `start_ns`, `end_ns`), never wall time.
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "mcu" / "emu" / "pico.mjs"
BOOTROM_ENV = "MBNODE_RP2040_BOOTROM"
BOOTROM_DEFAULT = ROOT.parent / "shared" / "mcu" / "rp2040-bootrom-b1.bin"
STOCK_FIRMWARE = ROOT / ".cache" / "mcu" / "rp2" / "RPI_PICO" / "firmware.bin"


def bootrom_path():
    """The RP2040 boot ROM: $MBNODE_RP2040_BOOTROM, else ../shared/mcu/ beside the checkout."""
    env = os.environ.get(BOOTROM_ENV)
    return Path(env) if env else BOOTROM_DEFAULT


def node_modules():
    env = os.environ.get("MBNODE_NODE_MODULES")
    return Path(env) if env else ROOT / ".cache" / "mcu" / "npm" / "node_modules"


def stock_firmware():
    """MicroPython's own rp2 firmware for RPI_PICO as `make setup-mcu` builds it."""
    return STOCK_FIRMWARE


def mpremote_path():
    beside = Path(sys.executable).parent / "mpremote"
    return str(beside) if beside.exists() else shutil.which("mpremote")


def missing(firmware=None):
    """What the emulated Pico lacks on this machine: [(what, how to get it)], empty if nothing."""
    out = []
    rom = bootrom_path()
    if not rom.is_file():
        out.append(("the RP2040 boot ROM (%s)" % rom, "set %s to the path of rp2040-bootrom-b1.bin; by default it is "
                    "../shared/mcu/rp2040-bootrom-b1.bin beside the checkout" % BOOTROM_ENV))
    if not shutil.which("node"):
        out.append(("node", "make setup-mcu installs it"))
    if not (node_modules() / "rp2040js" / "package.json").is_file():
        out.append(("rp2040js in %s" % node_modules(), "make setup-mcu installs it"))
    if firmware is not None and not Path(firmware).is_file():
        out.append(("%s" % firmware, "make setup-mcu builds it"))
    return out


def require(firmware=None):
    """In a test: skip (locally) or fail (CI=true) when the emulated Pico cannot run here. The
    boot ROM comes with no package: the message names the variable to set."""
    import pytest
    from conftest import IN_CI, need  # tests/conftest.py

    for what, how in missing(firmware):
        if what.startswith("the RP2040 boot ROM"):
            message = "%s not found: %s" % (what, how)
            if IN_CI:
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        need("%s (%s)" % (what, how), False)


class RunnerError(RuntimeError):
    pass


class Pico:
    """A running emulated Pico. Keywords are the runner's options (tests/mcu/emu/pico.mjs):

    firmware: a .bin/.uf2/.elf written over the flash (blank, or `flash`)
    flash: a saved 2 MB flash image to start from (a power cycle of a board)
    save_flash: where the runner saves the flash when it stops
    workdir: directory for the CDC log and the runner's stderr (default: a new temp dir)
    time_limit: wall-clock seconds after which the runner stops by itself
    speed: pace of simulated time against wall time while the chip sleeps (0: unpaced)
    uart_host: the host side's line settings, e.g. "19200,8E1" (default: the firmware's)
    host_gap_us: the quiet time the host keeps before it sends (default t3.5)
    watch: GPIO numbers whose edges are logged from the start
    """

    def __init__(self, firmware=None, flash=None, save_flash=None, workdir=None, time_limit=900, speed=1,
                 uart_host=None, host_gap_us=None, watch=(), extra=(), ready_timeout=60):
        if firmware is None and flash is None:
            firmware = stock_firmware()
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="pico-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cdc_log = self.workdir / ("cdc-%d.log" % id(self))
        self.err_log = self.workdir / ("runner-%d.err" % id(self))
        self.save_flash_path = Path(save_flash) if save_flash else None
        argv = ["node"] + os.environ.get("PICO_NODE_ARGS", "").split() + [str(RUNNER), "--bootrom", str(bootrom_path()), "--cdc-log", str(self.cdc_log),
                "--time-limit", str(time_limit), "--speed", str(speed)]
        if firmware is not None:
            argv += ["--firmware", str(firmware)]
        if flash is not None:
            argv += ["--flash", str(flash)]
        if save_flash is not None:
            argv += ["--save-flash", str(save_flash)]
        if uart_host is not None:
            argv += ["--uart-host", uart_host]
        if host_gap_us is not None:
            argv += ["--host-gap-us", str(host_gap_us)]
        if watch:
            argv += ["--watch", ",".join(str(p) for p in watch)]
        argv += list(extra)
        self.cdc_log.write_bytes(b"")
        self._stdout = b""
        self._ctl = None
        self._ctl_lock = threading.Lock()
        self.exit_info = None
        with open(self.err_log, "wb") as err:
            # Own process group: stop() can kill the runner with anything it started.
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True, cwd=str(ROOT))
        try:
            self.ready = self._read_json_line(ready_timeout, "ready")
        except Exception:
            self.kill()
            raise
        self.repl_url = self.ready["repl"]
        self.uart_url = self.ready["uart0"]
        host, port = self.ready["control"].rsplit(":", 1)
        self.control_addr = (host, int(port))

    # --- process ------------------------------------------------------------------------------

    def _read_json_line(self, timeout, key):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._stdout:
                line, self._stdout = self._stdout.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if key in msg:
                    return msg
            if time.monotonic() > deadline:
                break
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                self._stdout += chunk
            elif self.proc.poll() is not None:
                break
        raise RunnerError("emulated Pico gave no %r line within %ss: %s" % (key, timeout, self.stderr_text()[-2000:]))

    def stderr_text(self):
        try:
            return self.err_log.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout=30):
        """Stop the runner (it saves the flash if save_flash was given); returns its exit code."""
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the runner stops when its stdin closes
            except OSError:
                pass
            try:
                self.exit_info = self._read_json_line(timeout, "exit")
                self.proc.wait(timeout=timeout)
            except (RunnerError, subprocess.TimeoutExpired):
                self.kill()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def wait_exit(self, timeout):
        """Wait for the runner to stop by itself; returns its exit line (e.g. the time limit)."""
        self.exit_info = self._read_json_line(timeout, "exit")
        self.proc.wait(timeout=timeout)
        return self.exit_info

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- control channel ----------------------------------------------------------------------

    def control(self, cmd, **args):
        """One request on the control channel; returns the reply dict, raises RunnerError on an error reply."""
        req = dict(args, cmd=cmd)
        with self._ctl_lock:
            for attempt in (0, 1):
                try:
                    if self._ctl is None:
                        self._ctl = socket.create_connection(self.control_addr, timeout=30).makefile("rwb")
                    self._ctl.write(json.dumps(req).encode() + b"\n")
                    self._ctl.flush()
                    line = self._ctl.readline()
                    if not line:
                        raise ConnectionError("control channel closed")
                    break
                except OSError:
                    self._ctl = None
                    if attempt or not self.running:
                        raise
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RunnerError("%s: %s" % (cmd, reply.get("error")))
        return reply

    def status(self):
        return self.control("status")

    def stats(self):
        return self.control("stats")

    def sim_ns(self):
        return self.control("time")["sim_ns"]

    def gpio(self, pins=None):
        """[{pin, level, function, output, drive, pull}] for the given pins (default all 30)."""
        return self.control("gpio", pins=list(pins) if pins is not None else None)["pins"]

    def level(self, pin):
        return self.gpio([pin])[0]["level"]

    def drive(self, pin, level):
        """Drive a pin from outside (1/0, like a switch to 3V3/GND) or release it (None)."""
        return self.control("drive", pin=pin, level=level)["pin"]

    def watch(self, pins):
        return self.control("watch", pins=list(pins))

    def pulses(self, pin, count, high_ns, low_ns=None):
        """The runner's signal generator: count pulses on pin away from its level now, high_ns
        each with low_ns (default high_ns) between, in simulated time. {pin, pulses_left, level}."""
        return self.control("pulses", pin=pin, count=count, high_ns=high_ns,
                            low_ns=high_ns if low_ns is None else low_ns)["train"]

    def pulses_left(self, pin):
        return self.control("train", pin=pin)["train"]["pulses_left"]

    def adc(self, channel, value):
        """What the ADC reads on channel 0..4 (4: the temperature sensor), 12 bits, until a reset."""
        return self.control("adc", channel=channel, value=value)

    def edges(self, since=0, pins=None):
        """Level changes of watched pins: ([{seq, pin, level, t_ns}], next_since)."""
        reply = self.control("edges", since=since, pins=list(pins) if pins is not None else None)
        return reply["edges"], reply["next"]

    def uart(self):
        """UART0 as the firmware set it ({'device': {baud, bits, parity, stop, ...}}) and the host side."""
        return self.control("uart")

    def uart_host(self, baud=None, bits=8, parity="N", stop=1, follow=False, gap_us=None):
        args = {"follow": True} if follow else {"baud": baud, "bits": bits, "parity": parity, "stop": stop}
        if gap_us is not None:
            args["gap_us"] = gap_us
        return self.control("uart_host", **args)

    def uart_trace(self, since=0):
        """Characters on the line since a sequence number: ([entries], next_since). Entries are
        {dir: 'host'|'rx'|'tx', start_ns, end_ns, value, ...}: 'host' what the host put on the
        line, 'rx' what the chip's receiver made of it (t_ns: into the FIFO; fe/pe/be flags;
        result stored/overrun/disabled), 'tx' what the chip sent."""
        entries = []
        while True:
            reply = self.control("uart_trace", since=since)
            entries += reply["entries"]
            if not reply["entries"]:
                return entries, reply["next"]
            since = reply["next"]

    def uart_send(self, data, gap_us=0):
        """Put bytes on the line from the host side with `gap_us` of idle line between them."""
        return self.control("uart_send", hex=bytes(data).hex(), gap_us=gap_us)

    def save_flash(self, path=None):
        return Path(self.control("save_flash", **({"path": str(path)} if path else {}))["path"])

    def reset(self):
        """Power cycle: the chip boots again from its flash; the endpoints stay."""
        return self.control("reset")

    def wait_for(self, predicate, timeout=60, what="condition", interval=0.05):
        """Poll predicate() until it returns something true; TimeoutError naming `what` if not."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("emulated Pico: no %s within %ss" % (what, timeout))
            if not self.running:
                raise RunnerError("emulated Pico stopped while waiting for %s: %s" % (what, self.stderr_text()[-2000:]))
            time.sleep(interval)

    # --- the USB CDC log and the REPL ---------------------------------------------------------

    def cdc_bytes(self):
        """Everything the board printed on its USB CDC since the runner started (all boots)."""
        return self.cdc_log.read_bytes()

    def cdc_mark(self):
        """A position in the CDC log: wait_cdc(..., start=mark) looks only at what came after."""
        return self.cdc_log.stat().st_size

    def wait_cdc(self, pattern, timeout=60, start=0):
        """Wait until the CDC log (from `start`) matches the regex; returns the match."""
        rx = re.compile(pattern if isinstance(pattern, bytes) else pattern.encode())

        def found():
            return rx.search(self.cdc_bytes()[start:])

        try:
            return self.wait_for(found, timeout, "%r on the USB CDC" % rx.pattern)
        except TimeoutError as e:
            raise TimeoutError("%s; its end: %r" % (e, self.cdc_bytes()[-400:])) from None

    def mpremote(self, *args, timeout=120, check=True):
        """Run a real mpremote against the board's USB CDC: mpremote connect socket://... ARGS."""
        exe = mpremote_path()
        if not exe:
            raise RunnerError("mpremote not found (pip install mpremote)")
        proc = subprocess.run([exe, "connect", self.repl_url, *args], capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode:
            raise RunnerError("mpremote %s failed (%d): %s%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                                 proc.stderr))
        return proc

    def exec(self, code, timeout=120):
        """Run code on the board through mpremote; returns what it printed."""
        return self.mpremote("exec", code, timeout=timeout).stdout

    # --- UART0 ---------------------------------------------------------------------------------

    def open_uart(self, timeout=5, **kw):
        """UART0 as a pyserial port (socket:// URL). Baud/parity given here are ignored by the
        socket: declare the host's settings with uart_host() (the default is the firmware's)."""
        import serial

        return serial.serial_for_url(self.uart_url, timeout=timeout, **kw)
