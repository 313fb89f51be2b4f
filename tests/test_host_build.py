"""`mbnode build --board NAME`: the .mpy bundle for every board with its chip's architecture, the
board's config.json, and a manifest.py that MicroPython's own manifest reader accepts."""

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import micropython_or_fail, need
from mbnode import config
from mbnode_host import boards, build, cli, paths

# .mpy header byte 2 holds the native architecture in its upper bits (py/persistentcode.h).
ARCH_CODE = {"x86": 1, "x64": 2, "armv6m": 4, "armv7m": 5, "xtensawin": 10, "rv32imc": 11}


@pytest.fixture(autouse=True)
def _mpy_cross():
    try:
        paths.mpy_cross()
    except paths.MissingTool as e:
        need(str(e), False)


def arch_of(mpy):
    header = mpy.read_bytes()[:4]
    assert header[0] == ord("M") and header[1] == 6
    return header[2] >> 2


@pytest.mark.parametrize("board", boards.names())
def test_bundle_for_every_board(board, tmp_path):
    b = build.bundle(board, tmp_path / board)
    info = boards.info(board)
    device = b.path / "device"
    files = {name for name, _ in b.device_files}
    assert {"main.py", "config.json", "board.mpy", "mbnode/pdu.mpy", "mbnode/tcp.mpy", "mbnode/rtu.mpy",
            "mbnode/rtulink.mpy", "mbnode/diag.mpy", "mbnode/config.mpy"} <= files
    # Every module of the firmware package, its subpackage mbnode/mqtt/ included, as .mpy.
    pkg = paths.FIRMWARE / "mbnode"
    modules = {"mbnode/" + p.relative_to(pkg).with_suffix(".mpy").as_posix() for p in pkg.rglob("*.py")}
    assert {"mbnode/mqtt/__init__.mpy", "mbnode/mqtt/bridge.mpy", "mbnode/mqtt/textproto.mpy"} <= modules <= files
    if info.chip:
        assert {"board_config.mpy", "pinboard.mpy", "pinrules.mpy", "chip_%s.mpy" % info.chip} <= files
        assert ("wifi.mpy" in files) == info.wifi
        assert not any(f.startswith("chip_") and f != "chip_%s.mpy" % info.chip for f in files)
    else:
        assert "ttyport.mpy" in files
    # Only modules with native code carry the architecture: fast.py and crc.py (viper).
    assert arch_of(device / "mbnode" / "fast.mpy") == ARCH_CODE[info.arch]
    assert arch_of(device / "mbnode" / "crc.mpy") == ARCH_CODE[info.arch]
    assert dict(b.device_files) == {p.relative_to(device).as_posix(): p.stat().st_size
                                    for p in device.rglob("*") if p.is_file()}
    # config.json validates with the board's own rules, to exactly what the board runs without it.
    rules = boards.rules(board)
    given = json.loads((device / "config.json").read_text())
    assert config.validate(given, *rules) == config.validate({}, *rules)


def test_pico_config_serves_rtu_without_tcp(tmp_path):
    given = json.loads((build.bundle("pico", tmp_path / "b").path / "device" / "config.json").read_text())
    assert given["unit_id"] == 1 and given["tcp"]["enabled"] is False
    assert given["rtu"] == {"enabled": True, "mode": "slave", "name": "rs485", "baud": 19200, "parity": "E",
                            "stopbits": None, "early_reply": False}
    assert (given["board"]["rtu_uart"], given["board"]["rtu_tx"], given["board"]["rtu_rx"],
            given["board"]["rtu_de"]) == (0, 0, 1, 22)
    assert given["channels"] == {"coils": ["0x0000-0x0007"], "discrete_inputs": ["0x0000-0x0003"],
                                 "holding_registers": ["0x0000-0x0001", "0x1000-0x17FF"],
                                 "input_registers": ["0x0000-0x0002", "0x1000-0x17FF"]}


def manifest_module():
    try:
        src = paths.micropython_src()
    except paths.MissingTool as e:
        need(str(e), False)
    spec = importlib.util.spec_from_file_location("manifestfile", src / "tools" / "manifestfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return src, module


@pytest.mark.parametrize("board", boards.MCU_BOARDS)
def test_manifest_is_read_by_micropython_tools_from_anywhere(board, tmp_path):
    """The frozen/ folder is self-contained: moved elsewhere, MicroPython's manifest reader
    (freeze mode) finds every file it names, and they are the board's modules."""
    src, mf = manifest_module()
    b = build.bundle(board, tmp_path / "out")
    moved = tmp_path / "elsewhere" / "mbnode-frozen"
    shutil.copytree(b.path / "frozen", moved)
    shutil.rmtree(b.path)
    info = boards.info(board)
    port = src / "ports" / info.port
    path_vars = {"MPY_DIR": str(src), "PORT_DIR": str(port), "BOARD_DIR": str(port / "boards" / info.micropython_board),
                 "MPY_LIB_DIR": None}
    # The port's own manifest (option base) pulls micropython-lib packages the +ds tree lacks.
    for main in (True, False):
        m = mf.ManifestFile(mf.MODE_FREEZE, path_vars)
        m.execute('include(%r, base=None, main=%r)' % (str(moved / "manifest.py"), main))
        targets = sorted(f.target_path for f in m.files())
        for f in m.files():
            assert (moved / f.target_path).read_bytes() == open(f.full_path, "rb").read()
            assert f.full_path.startswith(str(moved))
        device = {n[:-4] + ".py" for n, _ in build.bundle(board, tmp_path / "again").device_files if n.endswith(".mpy")}
        assert set(targets) == device | ({"main.py"} if main else set())
    # The default base is the manifest the port uses for that board.
    text = (moved / "manifest.py").read_text()
    base = text.split("options.defaults(base=", 1)[1].split(",", 1)[0].strip("'\"")
    for name, value in path_vars.items():
        if value:
            base = base.replace("$(%s)" % name, value)
    assert Path(base).is_file(), base


def test_cli_prints_sizes_then_the_folder(tmp_path, capsys):
    out = tmp_path / "pico"
    assert cli.main(["build", "--board", "pico", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == str(out)
    device = out / "device"
    files = sorted(p for p in device.rglob("*") if p.is_file())
    for p in files:
        name = "device/" + p.relative_to(device).as_posix()
        assert any(line.split() == [name, str(p.stat().st_size)] for line in lines), name
    total = sum(p.stat().st_size for p in files)
    assert any(line.split()[:6] == ["device", "total", str(total), "bytes", "in", str(len(files))] for line in lines)
    assert any(line.startswith("frozen total") for line in lines)


def test_arch_override_for_other_cores(tmp_path):
    out = build.compile_mpy("pico", tmp_path / "m3", arch="armv7m")
    assert arch_of(out / "mbnode" / "crc.mpy") == ARCH_CODE["armv7m"]
    assert not (out / "config.json").exists()


def test_tracebacks_name_the_modules_as_imported(tmp_path):
    """Each .mpy's source name is its module's import name (build.source_name; a package's
    __init__ is the package): a traceback on the device names "mbnode.config", no path."""
    assert build.source_name("mbnode/mqtt/__init__") == "mbnode.mqtt"
    assert build.source_name("mbnode/mqtt/bridge") == "mbnode.mqtt.bridge"
    assert build.source_name("board") == "board"
    out = build.compile_mpy("unix", tmp_path / "m", arch=build.UNIX_ARCH[32])
    r = subprocess.run([micropython_or_fail(32), "-c", "from mbnode import config\nconfig.validate({'tcp': 5})"],
                       env=dict(os.environ, MICROPYPATH=str(out)), cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and 'File "mbnode.config", line ' in r.stderr and ".py" not in r.stderr, r.stderr


def _tables(mpy):
    """(names, constant objects) of a .mpy's module: the counts its loader allocates tables for."""
    data = mpy.read_bytes()
    n_qstr, i = build._uint(data, 4)
    return n_qstr, build._uint(data, i)[0]


def test_no_module_keeps_the_next_heap_block_alive(tmp_path):
    """MicroPython 1.25 points a module's constant table past its name table: with no constant
    object and names filling whole GC blocks that pointer is the next block, kept alive by the
    collector. compile_mpy gives such a module one unused constant (build.pad_constants); it
    still imports and runs, and no firmware module meets the condition afterwards."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "fill.py").write_text("def f(a, b, c, d, e):\n    return a + b + c + d + e\n")
    (src / "text.py").write_text("def f(a, b, c, d, e):\n    return 'a text of some length'\n")
    tool = paths.mpy_cross()
    for name in ("fill", "text"):
        subprocess.run([tool, "-march=x86", "-s", name, "-o", str(tmp_path / (name + ".mpy")),
                        str(src / (name + ".py"))], check=True)
    mpy = tmp_path / "fill.mpy"
    n_qstr, n_obj = _tables(mpy)
    assert n_obj == 0 and (n_qstr * 2 + 3) // 4 % 4 == 0, (n_qstr, n_obj)  # the case: names fill blocks
    padded = build.pad_constants(mpy.read_bytes())
    assert len(padded) == mpy.stat().st_size + 1
    mpy.write_bytes(padded)
    assert _tables(mpy) == (n_qstr, 1)
    r = subprocess.run([micropython_or_fail(32), "-c", "import fill\nprint(fill.f(1, 2, 3, 4, 5))"],
                       env=dict(os.environ, MICROPYPATH=str(tmp_path)), cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "15", r.stdout + r.stderr
    text = (tmp_path / "text.mpy").read_bytes()  # a module with a constant object: unchanged
    assert _tables(tmp_path / "text.mpy")[1] == 1 and build.pad_constants(text) == text
    out = build.compile_mpy("unix", tmp_path / "m", arch=build.UNIX_ARCH[32])
    for m in out.rglob("*.mpy"):
        n_qstr, n_obj = _tables(m)
        assert n_obj or (n_qstr * 2 + 3) // 4 % 4, "%s: %d names, no constant" % (m, n_qstr)


def test_unknown_board_lists_the_names(tmp_path, capsys):
    assert cli.main(["build", "--board", "avr", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == (
        "mbnode build: board 'avr': allowed esp32, esp32-c3, esp32-s3, pico, pico-w, unix")
    assert cli.main(["build"]) == 2
    assert "allowed esp32, esp32-c3, esp32-s3, pico, pico-w, unix" in capsys.readouterr().err


def test_old_target_names_still_build(tmp_path, capsys):
    assert cli.main(["build", "--target", "rp2", "--out", str(tmp_path / "rp2")]) == 0
    captured = capsys.readouterr()
    assert "--target rp2 is --board pico" in captured.err
    assert arch_of(tmp_path / "rp2" / "device" / "mbnode" / "fast.mpy") == ARCH_CODE["armv6m"]
    assert cli.main(["build", "--target", "unix-32", "--out", str(tmp_path / "u")]) == 0
    assert arch_of(tmp_path / "u" / "device" / "mbnode" / "fast.mpy") == ARCH_CODE["x86"]
    assert cli.main(["build", "--target", "avr"]) == 2
    assert "allowed esp32, esp32c3, rp2, unix-32, unix-64" in capsys.readouterr().err


def test_refuses_to_wipe_a_folder_that_is_not_a_build(tmp_path, capsys):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    assert cli.main(["build", "--board", "pico", "--out", str(keep)]) == 1
    assert "is not an mbnode build" in capsys.readouterr().err
    assert (keep / "notes.txt").exists()
