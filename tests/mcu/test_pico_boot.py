"""The emulated Pico at power-up: the mbnode image serves with nothing installed, and a broken
config.json (deployed bundle or image) costs one line on the REPL, never the service: the board
starts with its defaults, RTU slave unit 1 at 19200 8E1 on UART0. A refused file is a fault: the
defaults then come with the system registers and status register 0x200F reads 1; with nothing
installed the board is simply not configured yet: no fault, no system registers."""

import pytest

from picotest import DO_PINS, Master, deployed, image_pico, image_uf2, ready_words, wait_ready

# The defaults a board starts before it has a config.json; with a refused one, the system registers too.
DEFAULT_READY = {"rtu": "uart0", "serial": "19200-8E1", "unit": "1", "board": "pico"}
REFUSED_READY = dict(DEFAULT_READY, system="0x2000")


def serves_the_defaults(pico, refused):
    m = Master(pico, 19200, "E", 1)
    try:
        r = m.read_holding_registers(0x1000, count=4, device_id=1)
        assert not r.isError(), r
        assert not m.write_coil(0, True, device_id=1).isError()
        assert pico.level(DO_PINS[0]) == 1
        r = m.read_coils(8, count=1, device_id=1)  # the defaults make only the 8 onboard DO present
        assert r.isError() and r.exception_code == 2, r
        r = m.read_input_registers(0x200F, count=1, device_id=1)  # faults: the configuration's (bit 0) only
        if refused:
            assert not r.isError() and r.registers == [1], r
        else:  # no system registers without a configuration that asks for them
            assert r.isError() and r.exception_code == 2, r
    finally:
        m.close()


def test_image_serves_with_nothing_installed(tmp_path, tmp_path_factory):
    pico, ready = image_pico(tmp_path, image_uf2(tmp_path_factory))
    with pico:
        assert ready_words(ready) == DEFAULT_READY
        log = pico.cdc_bytes().decode(errors="replace")
        lines = [x for x in log.splitlines() if x.startswith("config:")]
        assert lines == ["config: config.json not found; starting with the defaults of board pico"], log
        serves_the_defaults(pico, refused=False)


@pytest.mark.parametrize("kind", ["deployed", "image"])
@pytest.mark.parametrize("broken, message", [
    ("{\"rtu\": {\"baud\": 19200,", "config: config.json is not valid JSON"),
    ("{\"rtu\": {\"parity\": \"X\"}}", "config: config.json: rtu.parity = \"X\": allowed one of \"E\", \"N\", \"O\""),
])
def test_broken_config_json_starts_with_the_defaults(tmp_path, tmp_path_factory, kind, broken, message):
    if kind == "deployed":
        pico, _ = deployed(tmp_path)
    else:
        pico, _ = image_pico(tmp_path, image_uf2(tmp_path_factory))
    with pico:
        bad = tmp_path / "broken.json"
        bad.write_text(broken)
        pico.mpremote("fs", "cp", str(bad), ":config.json")
        mark = pico.cdc_mark()
        pico.reset()  # a power cycle
        assert ready_words(wait_ready(pico, mark)) == REFUSED_READY
        after = pico.cdc_bytes()[mark:].decode(errors="replace")
        lines = [x for x in after.splitlines() if x.startswith("config:")]
        assert len(lines) == 1 and lines[0].startswith(message), after
        assert lines[0].endswith("; starting with the defaults of board pico"), lines[0]
        assert "Traceback" not in after, after
        serves_the_defaults(pico, refused=True)
