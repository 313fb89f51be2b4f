"""Saves of retained memory and a serial line in master mode (mbnode.retain, mbnode.rtumaster;
docs/reliability.md, "Flash writes and the UART"): on the RP2040 a flash write stops the UART's
interrupts, so no step of a save may run while the master awaits an answer on any line.

The real firmware on the 32-bit unix port is the TCP-to-RTU gateway in front of an emulated
slave (tests/fakes/emulated_slave.py on tests/fakes/line_emulator.py, which keeps the wire's
time), three pymodbus TCP clients keep the master line busy without pause, and retained memory
is saved again and again meanwhile (the control channel's `save`). The unix board's test hook
(MBNODE_STOP_AT=log, boards/unix/simsave.py) prints each save step's time (ticks_us: the host's
CLOCK_MONOTONIC, modulo 2**30); the emulated slave notes when each request began on the wire
and when its answer ended (the emulator's clock, the same CLOCK_MONOTONIC). No step may fall
inside one of those windows, every request is answered once and correctly, and the saves go on.
"""

import sys
import threading
import time

import pytest

from conftest import ROOT, Sim, need
from mbtest import pymodbus, unit
from test_retain import save

sys.path.insert(0, str(ROOT / "tests" / "fakes"))

from emulated_slave import EmulatedSlave  # noqa: E402
from line_emulator import LineEmulator, PtyEnd, Setting  # noqa: E402

TICKS = 1 << 30  # MicroPython's ticks_us period
SAVES = 10
REGS = 10  # registers per read: a 25-byte answer


class TimedSlave(EmulatedSlave):
    """An EmulatedSlave that notes, per request it answers, the wire time from the request's
    first character to the end of its answer (time.monotonic, seconds)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.windows = []

    def _end_frame(self):
        n, end = len(self._frame), self._last
        before = len(self.log)
        super()._end_frame()
        if len(self.log) > before and self.log[-1][2] == "answered":
            s = self.fixed
            char = s.bits * s.bit_time
            answer = 5 + 2 * REGS
            # The last character's stop bit was sampled at `end`; the answer starts t3.5 + the
            # reply delay after it. One character's time is left off each side (the sampling
            # point and the emulator's scheduling are not the characters' exact edges).
            self.windows.append((end - (n - 1) * char, end + s.t35 + self.reply_delay + answer * char - char))


def client(sim, first, stop, counts, errors, i):
    from pymodbus.client import ModbusTcpClient

    c = ModbusTcpClient(sim.host, port=sim.port, timeout=5, retries=0)
    if not c.connect():
        errors.append("client %d could not connect" % i)
        return
    try:
        while not stop.is_set():
            rr = c.read_holding_registers(first, count=REGS, **unit(5))
            want = [1000 + first + k for k in range(REGS)]
            if rr.isError() or rr.registers != want:
                errors.append("client %d: %s" % (i, rr))
                return
            counts[i] += 1
    finally:
        c.close()


def slave_client(sim, stop, counts, errors, i):
    """A master polling the device's own slave line (the pty of --rtu pty) without pause."""
    from pymodbus import FramerType
    from pymodbus.client import ModbusSerialClient

    c = ModbusSerialClient(port=sim.rtu_path, framer=FramerType.RTU, baudrate=19200, parity="N", stopbits=1,
                           timeout=2.0, retries=0)
    if not c.connect():
        errors.append("serial client could not connect")
        return
    try:
        while not stop.is_set():
            rr = c.read_holding_registers(0x1000, count=REGS, **unit(1))
            if rr.isError() or len(rr.registers) != REGS:
                errors.append("serial client: %s" % rr)
                return
            counts[i] += 1
    finally:
        c.close()


@pytest.mark.parametrize("slave_line", [False, True], ids=["master-line", "master-and-slave-lines"])
def test_saves_wait_for_the_master_lines_answers_and_still_happen(tmp_path, monkeypatch, slave_line):
    """slave_line: the device is also a slave on a second line (rtu, --rtu pty), polled without
    pause by a pymodbus RTU master; the master line is then rtu2. Its requests are counted too."""
    need("pymodbus", pymodbus is not None)
    monkeypatch.setenv("MBNODE_STOP_AT", "log")
    setting = Setting(19200, parity="N", stopbits=2)
    slave = TimedSlave(setting, unit=5, holding=[(0, 99)], reply_delay=0.010)
    master = {"enabled": True, "mode": "master", "baud": 19200, "parity": "N", "stopbits": 2}
    # 200 positions: 800 bytes of data, a save of 7 steps (opened, header, data x3, closed, renamed)
    cfg = {"unit_id": 1, "gateway": {"enabled": True, "units": [5], "timeout_ms": 300},
           "retain": {"positions": [[1, 200]], "file": str(tmp_path / "retain.dat")}}
    stop = threading.Event()
    counts = [0, 0, 0, 0]
    errors = []
    with LineEmulator([PtyEnd(), slave]) as line:
        if slave_line:
            cfg.update(rtu2=dict(master, name="field"), board={"rtu2_device": line.url(0)})
            sim = Sim(tmp_path=tmp_path, config=cfg, rtu="pty")
        else:
            cfg["rtu"] = master
            sim = Sim(tmp_path=tmp_path, config=cfg, rtu=line.url(0), parity="N", stopbits=2)
        threads = [threading.Thread(target=client, args=(sim, 10 * i, stop, counts, errors, i)) for i in range(3)]
        if slave_line:
            threads.append(threading.Thread(target=slave_client, args=(sim, stop, counts, errors, 3)))
        try:
            for t in threads:
                t.start()
            deadline = time.monotonic() + 20
            while min(counts[:len(threads)]) < 3 and not errors:  # every line busy with every client
                assert time.monotonic() < deadline, "clients not served: %s" % counts
                time.sleep(0.01)
            done = [save(sim, timeout=20)[0] for _ in range(SAVES)]
            during = sum(counts)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            sim.stop()
    out = sim.proc.stdout.read()
    assert errors == []
    assert sum(counts) > during > 0  # requests went on while the saves were made
    assert done == sorted(set(done)) and len(done) == SAVES  # every save completed, one after the other
    # Every request on the master line counted once by the slave and answered; nothing spoiled.
    c = slave.counts()
    assert (c["requests"], c["answered"], slave.spoiled) == (sum(counts[:3]), sum(counts[:3]), 0), (c, counts)
    assert not slave_line or counts[3] > 0
    steps = [int(line.rsplit(" ", 1)[1]) for line in out.splitlines()
             if line.startswith("mbnode: test hook: save step")]
    assert len(steps) >= 7 * SAVES, out[-2000:]
    inside = []
    for lo, hi in slave.windows:
        a, b = int(lo * 1e6) % TICKS, int(hi * 1e6) % TICKS
        span = (b - a) % TICKS
        inside += [(t, a, b) for t in steps if (t - a) % TICKS <= span]
    assert inside == [], "save steps while an answer was awaited (step, request start, answer end): %s" % inside[:5]
