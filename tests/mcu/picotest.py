"""The emulated Pico with mbnode on it, for the MCU tests: put there the way a user does it (the
stock MicroPython firmware plus `mbnode deploy`, or the `mbnode build --image` firmware plus a
config.json), and a counting pymodbus master on its RS-485 line.

Every request goes out once (pymodbus retries=0) and is counted: a lost one raises at once and
shows in `Master.sent` / `Master.answered`; nothing retries it away.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

from pico import Pico, require, stock_firmware

ROOT = Path(__file__).resolve().parents[2]
OLD_FIRMWARE = ROOT / ".cache" / "mcu" / "rp2" / "RPI_PICO-as-1.22" / "firmware.bin"
DE_PIN = 22
DO_PINS = [2, 3, 6, 7, 8, 9, 10, 11]
DI_PINS = [12, 13, 14, 15]
READY_TIMEOUT = 120  # s: wall time on a loaded 2-core machine, the Pico boots in well under 10


def mbnode(*args, timeout=600):
    """The real `mbnode` command (this venv's), as a user runs it; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "mbnode_host.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


_IMAGE = {}


def image_uf2(tmp_path_factory):
    """`mbnode build --board pico --image` once per test session: the .uf2 it prints last."""
    if "uf2" not in _IMAGE:
        out = tmp_path_factory.mktemp("image")
        r = mbnode("build", "--board", "pico", "--image", "--out", str(out / "pico"), timeout=1200)
        assert r.returncode == 0, r.stdout + r.stderr
        uf2 = r.stdout.strip().splitlines()[-1]
        assert uf2.endswith("mbnode-pico.uf2"), r.stdout
        _IMAGE["uf2"] = uf2
    return _IMAGE["uf2"]


def board_config(baud=19200, parity="E", full_map=False):
    """The pico board's configuration as a user writes it: only what differs from the defaults."""
    cfg = {"rtu": {"baud": baud, "parity": parity}}
    if full_map:
        # Every channel of the seed RTU's map: onboard and extension DO/DI 0x0000-0x023F, AO/AI
        # 0x0000-0x013F, and the memory registers. Channels past the onboard pins are RAM.
        cfg["channels"] = {
            "coils": ["0x0000-0x023F"], "discrete_inputs": ["0x0000-0x023F"],
            "holding_registers": ["0x0000-0x013F", "0x1000-0x17FF"],
            "input_registers": ["0x0000-0x013F", "0x1000-0x17FF"],
        }
    return cfg


def write_config(tmp_path, cfg, name="config.json"):
    path = Path(tmp_path) / name
    path.write_text(json.dumps(cfg))
    return path


def line_settings(cfg):
    rtu = cfg.get("rtu", {})
    baud, parity = rtu.get("baud", 19200), rtu.get("parity", "E")
    return baud, parity, rtu.get("stopbits") or (2 if parity == "N" else 1)


def ready_words(line):
    """{"rtu": "uart0", "serial": "19200-8E1", "unit": "1", "board": "pico"} of a ready line."""
    words = line.split()[1:]
    return dict(zip(words[0::2], words[1::2]))


def wait_ready(pico, mark, timeout=READY_TIMEOUT):
    """The ready line mbnode printed on the USB CDC after `mark` (pico.cdc_mark())."""
    m = pico.wait_cdc(rb"(ready [^\r\n]*)\r?\n", timeout=timeout, start=mark)
    return m.group(1).decode()


def deployed(tmp_path, cfg=None, firmware=None):
    """A Pico with the stock firmware on a blank flash and mbnode deployed onto it with `mbnode
    deploy` (the given configuration, else the board's defaults); returns (pico, deploy output)."""
    fw = firmware or stock_firmware()
    require(fw)
    pico = Pico(firmware=fw, workdir=tmp_path, watch=[DE_PIN] + DO_PINS)
    try:
        pico.wait_cdc(rb">>> ", timeout=READY_TIMEOUT)
        args = ["deploy", "--board", "pico", "--port", pico.repl_url]
        if cfg is not None:
            args += ["--config", str(write_config(tmp_path, cfg))]
        r = mbnode(*args)
        assert r.returncode == 0, "mbnode deploy failed:\n%s%s" % (r.stdout, r.stderr)
        return pico, r
    except BaseException:
        pico.stop()
        raise


def image_pico(tmp_path, image, cfg=None):
    """A Pico with the mbnode firmware image on a blank flash (nothing else installed); with
    cfg, a config.json written with mpremote and the board power-cycled. Returns (pico, ready)."""
    require(image)
    pico = Pico(firmware=image, workdir=tmp_path, watch=[DE_PIN] + DO_PINS)
    try:
        ready = wait_ready(pico, 0)
        if cfg is not None:
            cfg_file = write_config(tmp_path, cfg)
            pico.mpremote("fs", "cp", str(cfg_file), ":config.json")
            mark = pico.cdc_mark()
            pico.reset()
            ready = wait_ready(pico, mark)
        return pico, ready
    except BaseException:
        pico.stop()
        raise


def copied(deploy_output):
    """The files a deploy copied, from its progress lines on stderr."""
    return re.findall(r"^copy (\S+) \(", deploy_output, re.M)


class Master:
    """pymodbus' serial master on the Pico's UART0 (socket:// URL), no retries, counting."""

    def __init__(self, pico, baud, parity, stopbits, timeout=5.0):
        from pymodbus import FramerType
        from pymodbus.client import ModbusSerialClient

        # The runner's line carries the firmware's settings; declare ours so that a mismatch
        # garbles bytes as on a real line (parity on a socket means nothing by itself).
        pico.uart_host(baud=baud, bits=8, parity=parity, stop=stopbits)
        self.client = ModbusSerialClient(port=pico.uart_url, framer=FramerType.RTU, baudrate=baud, parity=parity,
                                         stopbits=stopbits, timeout=timeout, retries=0)
        assert self.client.connect(), "pymodbus could not open %s" % pico.uart_url
        self.sent = self.answered = 0

    def __getattr__(self, name):
        call = getattr(self.client, name)

        def counted(*args, **kw):
            self.sent += 1
            r = call(*args, **kw)  # raises ModbusIOException when no answer came: a lost request
            self.answered += 1
            return r

        return counted

    def raw(self, pdu, unit=1, timeout=5.0):
        """A request pymodbus would refuse to build (e.g. a quantity over the limit), sent as raw
        bytes on the same line; returns the reply PDU (CRC checked). Counted like the others."""
        import time

        from mbnode.rtu import response_length
        from rtutest import adu, crc_ok

        self.sent += 1
        port = self.client.socket
        frame = adu(unit, pdu)
        port.reset_input_buffer()
        port.write(frame)
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got += port.read(max(1, port.in_waiting))
            n = response_length(got, 0, len(got), len(frame))
            if n > 0 and len(got) >= n:
                break
        n = response_length(got, 0, len(got), len(frame))
        assert n > 0 and len(got) >= n, "no reply to %s (got %s)" % (frame.hex(), got.hex())
        assert crc_ok(got[:n]) and got[0] == unit, got.hex()
        self.answered += 1
        return got[1:n - 2]

    def close(self):
        self.client.close()
