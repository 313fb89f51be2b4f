"""`mbnode build`: the firmware compiles to .mpy for every target with the right architecture."""

import pytest

from conftest import need
from mbnode_host import build, paths

# .mpy header byte 2 holds the native architecture in its upper bits (py/persistentcode.h).
ARCH_CODE = {"x86": 1, "x64": 2, "armv6m": 4, "xtensawin": 10, "rv32imc": 11}


@pytest.mark.parametrize("target", sorted(build.ARCH))
def test_build_every_target(target, tmp_path):
    try:
        paths.mpy_cross()
    except paths.MissingTool as e:
        need(str(e), False)
    out = build.build(target, tmp_path / target)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "main.py" in files and "board.mpy" in files
    assert {"mbnode/pdu.mpy", "mbnode/tcp.mpy", "mbnode/rtu.mpy", "mbnode/rtulink.mpy", "mbnode/diag.mpy"} <= set(files)
    if target.startswith("unix"):
        assert "ttyport.mpy" in files
    header = (out / "mbnode" / "fast.mpy").read_bytes()[:4]
    assert header[0] == ord("M") and header[1] == 6
    assert header[2] >> 2 == ARCH_CODE[build.ARCH[target]]


def test_unknown_target_is_refused(tmp_path):
    with pytest.raises(ValueError, match="allowed esp32, esp32c3, rp2, unix-32, unix-64"):
        build.build("avr", tmp_path)
