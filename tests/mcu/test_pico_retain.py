"""Retained memory and the custom register block on the emulated Pico: mbnode deployed onto the
stock firmware, files on MicroPython's littlefs in the emulated flash, a counting pymodbus
master on UART0 (no retries: a lost request fails the test).

The runner counts the ROM's flash_range_erase/flash_range_program calls (each runs with every
interrupt off on a real chip). What a save and a custom block write cost in such calls is
printed (docs/reliability.md quotes it); the emulator gives them no time, so the time they
take on a real chip is the datasheet's (docs/reliability.md, "Flash writes and the UART").
"""

import re
import struct

from picotest import Master, board_config, deployed, line_settings, wait_ready
from rtutest import adu, crc_ok

BLOCK = 1024  # address of custom block register number 1025


def flash(pico):
    return pico.stats()["flash"]


def delta(a, b):
    return {k: b[k] - a[k] for k in a}


def test_retained_memory_and_custom_block_over_a_power_cycle(tmp_path):
    cfg = board_config(19200, "E")
    cfg["retain"] = {"positions": [[1, 100]], "every_s": 1}
    cfg["custom_block"] = {"count": 3072}  # 6 KiB: two littlefs blocks
    pico, _ = deployed(tmp_path, cfg)
    master = Master(pico, *line_settings(cfg))
    try:
        values = [(7 * i) & 0xFFFF for i in range(120)]  # positions 1..60, in one FC16
        # The custom block: one FC16, its flash work counted.
        before = flash(pico)
        assert not master.write_registers(BLOCK + 10, [0x1111, 0x2222, 0x3333], device_id=1).isError()
        block_write = delta(before, flash(pico))
        assert master.read_holding_registers(BLOCK + 10, count=3, device_id=1).registers == [0x1111, 0x2222, 0x3333]
        before = flash(pico)
        assert not master.write_registers(BLOCK + 3000, [0x4444], device_id=1).isError()
        block_end_write = delta(before, flash(pico))
        # Retained memory: one write, then polled (each reply is a save's moment) until 3 s of the
        # board's time have passed: the save every_s (1 s) allows has begun and ended in them.
        before = flash(pico)
        assert not master.write_registers(0x1000, values, device_id=1).isError()
        until = pico.sim_ns() + 3 * 10**9
        polls = 0
        while pico.sim_ns() < until:
            assert master.read_holding_registers(0x1000, count=2, device_id=1).registers == values[:2]
            polls += 1
            assert polls < 5000, "3 s of board time not over after 5000 polls"
        save = delta(before, flash(pico))
        print("flash work of one custom block FC16 (3 registers at its start, 6 KiB file): %s" % block_write)
        print("flash work of one custom block FC16 (1 register near its end): %s" % block_end_write)
        print("flash work of one retained-memory save (100 positions, 406 bytes), %d polls: %s" % (polls, save))
        assert master.sent == master.answered
        # Power cycle: the device comes back with both.
        mark = pico.cdc_mark()
        pico.reset()
        wait_ready(pico, mark)
        log = pico.cdc_bytes()[mark:].decode(errors="replace")
        restored = re.findall(r"mbnode: retain retain.dat: [^\r\n]*", log)
        assert restored == ["mbnode: retain retain.dat: restored save 1"], log
        master.close()
        master = Master(pico, *line_settings(cfg))
        assert master.read_holding_registers(0x1000, count=120, device_id=1).registers == values
        assert master.read_holding_registers(BLOCK + 10, count=3, device_id=1).registers == [0x1111, 0x2222, 0x3333]
        assert master.read_holding_registers(BLOCK + 3000, count=1, device_id=1).registers == [0x4444]
        assert master.sent == master.answered
    finally:
        master.close()
        pico.stop()


ERASE_NS = 45 * 10**6  # a W25Q16JV 4 KiB sector erase, typical (datasheet; at most 400 ms)
PAGE_NS = 400 * 10**3  # a 256-byte page program, typical (at most 3 ms)


def on_line(entries, who):
    return bytes(e["value"] for e in entries if e["dir"] == who)


def test_a_frame_arriving_during_a_flash_erase(tmp_path):
    """The runner gives each flash call the datasheet's typical time (the core held with
    interrupts off, as rp2_flash.c holds it) and starts a frame on the line as the next erase
    starts: the worst moment for a request. Retained memory takes its save steps right after a
    reply or on an idle line, so that erase is one of a save's. A frame of up to 32 characters
    waits in the PL011's FIFO and is answered once the erase is over; of a longer one the
    characters past the 32nd are lost (the FIFO overruns), and it gets no answer."""
    cfg = board_config(19200, "E")
    cfg["retain"] = {"positions": [[1, 100]], "every_s": 1}
    pico, _ = deployed(tmp_path, cfg)
    try:
        pico.uart_host(baud=19200, bits=8, parity="E", stop=1)
        short = adu(1, bytes.fromhex("0310000002"))  # FC03, positions 1: 8 characters
        values = b"".join(struct.pack(">H", 0x5A00 + i) for i in range(25))
        long = adu(1, bytes.fromhex("1010A00019") + bytes([50]) + values)  # FC16 x25, position 81: 59 characters
        for frame in (short, long):
            pico.control("flash_timing", erase_ns=ERASE_NS, page_ns=PAGE_NS, inject_hex=frame.hex())
            fired = None
            for attempt in range(30):
                # A write to retained position 71; the save follows on the idle line 1 s later.
                _, since = pico.uart_trace()
                before = pico.stats()["uart0"]
                pico.uart_send(adu(1, bytes.fromhex("06108C") + struct.pack(">H", attempt)))
                until = pico.sim_ns() + 2 * 10**9
                pico.wait_for(lambda: pico.sim_ns() >= until, 120, "2 s of board time")
                entries, _ = pico.uart_trace(since)
                host = on_line(entries, "host")
                if len(host) > 8:  # the injected frame went out: an erase began
                    fired = (before, entries)
                    break
            assert fired, "no flash erase in 30 saves"
            before, entries = fired
            lost = pico.stats()["uart0"]["rx_lost"] - before["rx_lost"]
            tx = on_line(entries, "tx")
            answer = tx[8:]  # after the FC06's echo answer
            print("frame of %d characters arriving as an erase of %d ms starts: %d characters lost, answer %s"
                  % (len(frame), ERASE_NS // 10**6, lost, answer.hex() or "none"))
            if frame is short:
                assert lost == 0 and len(answer) == 9 and crc_ok(answer) and answer[:3] == b"\x01\x03\x04", answer.hex()
            else:
                assert lost == len(frame) - 32 and answer == b"", (lost, answer.hex())
        # The line is served on.
        pico.control("flash_timing", erase_ns=0, page_ns=0)
        master = Master(pico, *line_settings(cfg))
        try:
            assert master.read_holding_registers(0x1000 + 2 * 80, count=2, device_id=1).registers == [0, 0]
        finally:
            master.close()
    finally:
        pico.stop()
