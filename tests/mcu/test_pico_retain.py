"""Retained memory and the custom register block on the emulated Pico: mbnode deployed onto the
stock firmware, files on MicroPython's littlefs in the emulated flash, a counting pymodbus
master on UART0 (no retries: a lost request fails the test).

The runner counts the ROM's flash_range_erase/flash_range_program calls (each runs with every
interrupt off on a real chip). What a save and a custom block write cost in such calls is
printed (docs/reliability.md quotes it); the emulator gives them no time, so the time they
take on a real chip is the datasheet's (docs/reliability.md, "Flash writes and the UART").
"""

import re

from picotest import Master, board_config, deployed, line_settings, wait_ready

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
