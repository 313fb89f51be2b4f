"""mbnode installed the mip way onto the emulated Pico: a real `mpremote mip install --target /`
from a file server on 127.0.0.1, then a soft reset boots mbnode from what mip wrote, and it
answers on RS-485; `mbnode deploy` then finds every file in place.

The package is the one `mbnode build --board pico` writes (build/pico/package.json: the .mpy
files compiled for armv6m); the repository's own package.json files (.py sources) lay out the
same names (tests/test_mip_package.py checks both with mpremote's installer on this machine).
Installing the .py sources here too would triple the bytes on the emulated USB for the same
layout: bench/mip_pico.py measures that install and its boot instead (docs/benchmarks.md).
"""

import hashlib
import json
import re

from mbnode_host import build, deploy
from pico import Pico, require, stock_firmware
from picotest import DE_PIN, DO_PINS, Master, mbnode, ready_words, wait_ready
from test_deploy import device_files
from test_mip_package import served

# The defaults a board starts with before it has a config.json (no fault: no system registers).
DEFAULT_READY = {"rtu": "uart0", "serial": "19200-8E1", "unit": "1", "board": "pico"}


def test_mip_install_boots_and_serves(tmp_path):
    require(stock_firmware())
    b = build.bundle("pico", tmp_path / "pico")
    package = json.loads((b.path / "package.json").read_text())
    device = b.path / "device"
    want = {"/" + name: hashlib.sha256((device / name).read_bytes()).hexdigest()
            for name, _ in b.device_files if name != "config.json"}
    assert sorted("/" + dest for dest, _ in package["urls"]) == sorted(want)
    files = served(b.path)
    with files as url, Pico(firmware=stock_firmware(), workdir=tmp_path, watch=[DE_PIN] + DO_PINS) as pico:
        pico.wait_cdc(rb">>> ")
        r = pico.mpremote("mip", "install", "--target", "/", url + "/package.json", timeout=600)
        assert r.stdout.strip().endswith("Done"), r.stdout
        # Each file fetched once, nothing else; on the board exactly those bytes, and no config.json.
        assert sorted(files.asked) == sorted(["/package.json"] + ["/" + u for _, u in package["urls"]])
        assert device_files(pico) == want

        # A soft reset through the REPL (as at power-up: boot.py, then /main.py) starts mbnode from
        # the installed files, with the board's defaults: mip never writes the configuration.
        mark = pico.cdc_mark()
        deploy.restart(pico.repl_url)
        assert ready_words(wait_ready(pico, mark)) == DEFAULT_READY
        log = pico.cdc_bytes()[mark:].decode(errors="replace")
        assert [x for x in log.splitlines() if x.startswith("config:")] == [
            "config: config.json not found; starting with the defaults of board pico"], log
        assert "Traceback" not in log, log

        m = Master(pico, 19200, "E", 1)
        try:
            assert not m.write_coils(0, [True, False, True, True, False, False, True, False], device_id=1).isError()
            assert [pico.level(p) for p in DO_PINS] == [1, 0, 1, 1, 0, 0, 1, 0]
            r = m.read_coils(0, count=8, device_id=1)
            assert not r.isError() and r.bits[:8] == [True, False, True, True, False, False, True, False], r
            assert not m.write_registers(0x1000, [0x1234, 0xABCD], device_id=1).isError()
            r = m.read_holding_registers(0x1000, count=2, device_id=1)
            assert not r.isError() and r.registers == [0x1234, 0xABCD], r
            r = m.read_coils(8, count=1, device_id=1)  # the defaults make only the 8 onboard DO present
            assert r.isError() and r.exception_code == 2, r
            assert (m.sent, m.answered) == (5, 5)
        finally:
            m.close()

        # The layout mip made is the one `mbnode deploy` makes: nothing to copy or remove, only
        # the configuration to write.
        again = mbnode("deploy", "--board", "pico", "--port", pico.repl_url)
        assert again.returncode == 0, again.stderr
        assert "%d files up to date, 0 to copy, 0 to remove, config.json to write" % len(want) in again.stderr, \
            again.stderr
        assert not re.findall(r"^copy ", again.stderr, re.M), again.stderr
        assert again.stdout.strip().endswith("rtu uart0 serial 19200-8E1 unit 1 board pico"), again.stdout
