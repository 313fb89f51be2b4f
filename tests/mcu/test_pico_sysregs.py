"""The system registers on the emulated Pico (mbnode deployed onto the stock firmware): the
status block read by a pymodbus RTU master, the chip temperature from the RP2040's ADC4, the
settings saved to the littlefs flash, the reboot command resetting the chip (machine.reset), and
the saved settings restored when it comes back. Every request is counted (picotest.Master)."""

import struct

from mbnode import VERSION
from picotest import Master, board_config, deployed, wait_ready

# rp2040js reads 0 from every ADC channel unless told otherwise, the temperature sensor (ADC4)
# too: the datasheet's formula gives 27 + 0.706 / 0.001721 = 437.2 degC for 0 V.
TEMP_AT_0V = round(10 * (27 - (0 - 0.706) / 0.001721))


def u32(r, i):
    return r[i] | (r[i + 1] << 16)


def text(r):
    return b"".join(struct.pack(">H", v) for v in r).rstrip(b"\0").decode()


def regs_of(s):
    return list(struct.unpack(">16H", s.encode().ljust(32, b"\0")))


def ok(r):
    assert not r.isError(), r
    return r


def test_status_save_reboot_restore(tmp_path):
    cfg = board_config(19200, "E")
    cfg["system"] = {"save_interval": 1}
    pico, r = deployed(tmp_path, cfg)
    with pico:
        m = Master(pico, 19200, "E", 1)
        try:
            st = ok(m.read_input_registers(0x2000, count=0x50, device_id=1)).registers
            assert text(st[0x30:0x40]) == VERSION
            assert text(st[0x20:0x30]) == "mbnode"
            assert st[0x0E] == TEMP_AT_0V, st[0x0E]  # computed on the chip from ADC4
            assert st[0x12:0x16] == [0, 0, 0, 0] and st[0x40:0x50] == [0] * 16  # no network on the Pico
            assert 0 < u32(st, 4) <= u32(st, 2) < 264 * 1024  # smallest free heap <= free heap < RAM
            assert st[0x0C] == 0 and u32(st, 0x0A) == 0 and u32(st, 0x16) == 0
            assert ok(m.read_holding_registers(0x2000, count=0x10, device_id=1)).registers[0x0E] == TEMP_AT_0V
            # Settings: the name at once, then saved to flash (one flash write counted).
            ok(m.write_registers(0x2100, regs_of("pico-cabinet"), device_id=1))
            assert text(ok(m.read_input_registers(0x2020, count=16, device_id=1)).registers) == "pico-cabinet"
            ok(m.write_register(0x2118, 1, device_id=1))
            assert u32(ok(m.read_input_registers(0x2016, count=2, device_id=1)).registers, 0) == 1
            requests = u32(ok(m.read_input_registers(0x2006, count=2, device_id=1)).registers, 0)
            assert requests == m.answered - 1  # every request of this master counted, the reading one not yet
            # Reboot: answered, then the chip resets and mbnode comes back with the saved name.
            mark = pico.cdc_mark()
            ok(m.write_register(0x2119, 1, device_id=1))
            ready = wait_ready(pico, mark)
            assert "unit 1" in ready
            log = pico.cdc_bytes()[mark:].decode(errors="replace")
            assert "settings.bin: restored save 1" in log, log
            st = ok(m.read_input_registers(0x2000, count=0x30, device_id=1)).registers
            assert text(st[0x20:0x30]) == "pico-cabinet"
            assert u32(st, 0x16) == 0 and u32(st, 6) == 0  # counted since this boot
            assert m.sent == m.answered
        finally:
            m.close()
