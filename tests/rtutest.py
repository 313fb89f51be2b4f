"""Modbus RTU helpers for the simulator tests: frames with their CRC, character times, a raw
client on the simulator's pty that controls the gaps between bytes, the I/O control channel on
one connection, and starting a simulator that is expected to refuse its settings.

A pty moves bytes at once whatever the baud rate, so every byte of one write() reaches the
slave together; gaps exist only where the client sleeps between writes. The slave still times
its t1.5/t3.5 from the configured line settings, which is what these helpers compute.
"""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path

from mbnode.crc import crc16
from mbnode.rtu import UNKNOWN, response_length

ROOT = Path(__file__).resolve().parents[1]

# --- frames ----------------------------------------------------------------------------------


def crc(data):
    """CRC-16/MODBUS of `data` (the firmware's own routine, proved against the spec elsewhere)."""
    data = bytes(data)
    return crc16(data, 0, len(data))


def adu(addr, pdu, bad_crc=False):
    """One RTU frame: address, PDU, CRC low byte first. bad_crc flips bits of the CRC."""
    body = bytes([addr]) + bytes(pdu)
    c = crc(body) ^ (0xA55A if bad_crc else 0)
    return body + struct.pack("<H", c)


def crc_ok(frame):
    return len(frame) >= 4 and struct.unpack("<H", frame[-2:])[0] == crc(frame[:-2])


def hx(text):
    return bytes.fromhex(text.replace(" ", ""))


# --- timing ----------------------------------------------------------------------------------


def char_bits(parity="E", stopbits=None):
    """Bits of one character: start, 8 data, parity if any, stop bits (default 1 with parity,
    2 without, as the serial line spec asks)."""
    if stopbits is None:
        stopbits = 2 if parity == "N" else 1
    return 1 + 8 + (parity != "N") + stopbits


def t15(baud, parity="E", stopbits=None):
    """Longest silence allowed inside a frame (seconds); fixed 750 us above 19200 baud."""
    return 750e-6 if baud > 19200 else 1.5 * char_bits(parity, stopbits) / baud


def t35(baud, parity="E", stopbits=None):
    """Silence that ends a frame (seconds); fixed 1750 us above 19200 baud."""
    return 1750e-6 if baud > 19200 else 3.5 * char_bits(parity, stopbits) / baud


# --- the raw client --------------------------------------------------------------------------


class RtuPort:
    """The client end of the simulator's pty, opened raw and non-blocking.

    t15/t35 are the slave's gaps for its line settings. Before sending, request() waits until
    the line is idle: t3.5 after a reply (as a master must), or, after bytes the slave did not
    answer, long enough for the slave to have ended that frame by silence, with a margin for
    a loaded machine (`margin` seconds, at least 2 x t3.5).
    """

    def __init__(self, path, baud=19200, parity="E", stopbits=None, margin=0.05):
        """path: the pty's path, or the number of an open non-blocking descriptor (the master's
        end of a socket pair), which close() closes too."""
        self.path = path
        self.t35 = t35(baud, parity, stopbits)
        self.t15 = t15(baud, parity, stopbits)
        self.settle = self.t35 + max(margin, 2 * self.t35)
        if isinstance(path, int):
            self.fd = path
        else:
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self.fd)
            termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.last_io = time.monotonic()
        self.idle_at = self.last_io

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing

    def write(self, data):
        """Write all of `data` at once. Returns the monotonic time taken just before the write
        that completed it: the slave cannot have seen the last byte earlier, so a delay measured
        from there is never too short, however late this process runs after the write."""
        view = memoryview(bytes(data))
        deadline = time.monotonic() + 5
        while True:
            t_start = time.monotonic()
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                n = 0
            view = view[n:]
            if not view:
                break
            assert time.monotonic() < deadline, "pty write stalled with %d bytes left" % len(view)
            select.select([], [self.fd], [], 0.05)
        self.last_io = time.monotonic()
        self.idle_at = self.last_io + self.settle
        return t_start

    def write_gapped(self, data, gap, gaps=None):
        """Write `data` one byte at a time, sleeping `gap` seconds between bytes (gaps: {index
        of the byte that follows the pause: seconds} overrides single pauses). Returns the list
        of times each byte was written (see write()), so a caller can check the gaps it really
        produced."""
        times = []
        for i, b in enumerate(bytes(data)):
            if i:
                pause = (gaps or {}).get(i, gap)
                if pause:
                    time.sleep(pause)
            times.append(self.write(bytes([b])))
        return times

    def wait_quiet(self):
        """Sleep until the line is idle (see the class)."""
        left = self.idle_at - time.monotonic()
        if left > 0:
            time.sleep(left)

    # -- reading

    def _read_some(self, timeout):
        if timeout > 0 and not select.select([self.fd], [], [], timeout)[0]:
            return b""
        try:
            data = os.read(self.fd, 512)
        except BlockingIOError:
            return b""
        if data:
            self.last_io = time.monotonic()
        return data

    def read_frame(self, timeout=2.0, request=None, silence=0.1):
        """(frame, time of its first byte): one response frame, ended by its length when the
        bytes tell it, else by `silence` seconds without a byte. (b"", None) when nothing
        arrives within `timeout`."""
        first = self._read_some(timeout)
        if not first:
            return b"", None
        t_first = self.last_io
        buf = first
        deadline = t_first + 2.0
        while True:
            need = response_length(buf, 0, len(buf), len(request) if request else 0)
            if need > 0 and len(buf) >= need:
                self.idle_at = self.last_io + self.t35
                return buf, t_first
            wait = silence if need == UNKNOWN else max(0.0, deadline - time.monotonic())
            more = self._read_some(wait)
            if not more:
                if need == UNKNOWN:
                    self.idle_at = self.last_io + self.t35
                    return buf, t_first
                raise AssertionError("response %s cut short: %d of %d bytes" % (buf.hex(), len(buf), need))
            buf += more

    def request_frame(self, frame, timeout=2.0, wait=True):
        """Send one raw frame, return (response frame, seconds from the write of its last byte
        to the first byte read, never an underestimate); (b"", None) if nothing came within
        `timeout`. wait=False sends at once, without the quiet time a master keeps."""
        if wait:
            self.wait_quiet()
        t_sent = self.write(frame)
        resp, t_first = self.read_frame(timeout, request=frame)
        return resp, (t_first - t_sent if resp else None)

    def request(self, pdu, addr=1, timeout=2.0):
        """Send `pdu` to `addr`, return the response PDU (checking its CRC and address)."""
        frame = adu(addr, pdu)
        resp, _ = self.request_frame(frame, timeout)
        assert resp, "no response to %s within %.1f s" % (frame.hex(), timeout)
        assert crc_ok(resp), "response %s to %s has a bad CRC" % (resp.hex(), frame.hex())
        assert resp[0] == addr, "response %s to %s from another address" % (resp.hex(), frame.hex())
        return resp[1:-2]

    def collect(self, seconds):
        """Every byte that arrives within `seconds` from now."""
        deadline = time.monotonic() + seconds
        data = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return data
            data += self._read_some(left)

    def silent(self, seconds):
        """True when no byte arrives within `seconds`; else AssertionError naming the bytes."""
        data = self._read_some(seconds)
        if data:
            data += self._read_some(0.05)
            raise AssertionError("expected no reply, got %s" % data.hex())
        return True

    def send_unanswered(self, frame, seconds=None):
        """Send a frame the slave must not answer; assert silence for `seconds` (default: 100
        ms, and at least 3 x t3.5 so that the slave has ended the frame)."""
        self.wait_quiet()
        self.write(frame)
        return self.silent(max(0.1, 3 * self.t35) if seconds is None else seconds)

    # -- FC08 diagnostics

    def diag(self, sub, data=0, addr=1):
        """FC08 sub-function with one data word; returns the response's data word, checking the
        sub-function is echoed."""
        pdu = self.request(struct.pack(">BHH", 8, sub, data), addr)
        assert pdu[:3] == struct.pack(">BH", 8, sub), "08/%02X answered %s" % (sub, pdu.hex())
        return struct.unpack(">H", pdu[3:5])[0]

    def counters(self, addr=1):
        """The six counters {0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x12}, read in that order: each read
        is itself a frame on the line, so 0x0B and 0x0E grow by one per read."""
        return {sub: self.diag(sub, 0, addr) for sub in (0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x12)}


# --- the I/O control channel on one connection -----------------------------------------------

class IoChannel:
    """One connection to the simulator's control channel for many requests."""

    def __init__(self, sim):
        self.sock = socket.create_connection(sim.io, timeout=5)
        self.rfile = self.sock.makefile("rb")

    def close(self):
        self.rfile.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\n")
        reply = self.rfile.readline().decode().strip()
        assert reply.startswith("ok"), "%r -> %r" % (line, reply)
        return [int(v) for v in reply.split()[1:]]

    def set_many(self, table, first, values, chunk=150):
        """Set a run of values in lines short enough for the channel's line buffer."""
        for i in range(0, len(values), chunk):
            self.cmd("set %s %d %s" % (table, first + i, " ".join(str(v) for v in values[i:i + chunk])))

    def zero_all(self):
        """Every channel and memory position back to 0, as on a fresh start."""
        for table in ("do", "di"):
            self.set_many(table, 0, [0] * 0x240)
        for table in ("ao", "ai"):
            self.set_many(table, 0, [0] * 0x140)
        self.set_many("mem", 1, [0] * 1024)


# --- a simulator expected to refuse its settings ---------------------------------------------

def sim_refusal(args, config=None, tmp_path=None, timeout=20):
    """Start `mbnode sim ARGS` expecting it to refuse: (exit status, stderr). If it prints its
    ready line instead (or hangs), it is stopped and (None, ready line or note) is returned."""
    argv = [sys.executable, "-m", "mbnode_host.cli", "sim", "--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0"]
    argv += [str(a) for a in args]
    if config is not None:
        cfg = Path(tmp_path) / "refused-config.json"
        cfg.write_text(json.dumps(config))
        argv += ["--config", str(cfg)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            return proc.returncode, err
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            out += line
            if line.startswith("ready"):
                break
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return None, out.strip() or "no exit within %d s" % timeout
