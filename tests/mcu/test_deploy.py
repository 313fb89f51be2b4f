"""`mbnode deploy` onto the emulated Pico through its USB CDC, with a real mpremote underneath:
a first deploy from a blank flash, a power cycle that boots mbnode from flash, a second deploy
that copies nothing, a configuration change that copies one file, a dry run that changes
nothing, and the boards it must refuse (an older MicroPython, another chip's bundle).
"""

import hashlib
import http.server
import json
import subprocess
import threading
from pathlib import Path

from mbnode_host import build, deploy
from pico import Pico, require
from picotest import (OLD_FIRMWARE, Master, board_config, copied, deployed, image_pico, image_uf2, line_settings,
                      mbnode, ready_words, wait_ready, write_config)

ROOT = Path(__file__).resolve().parents[2]


def device_files(pico):
    """{path: sha256} of every file on the board's filesystem."""
    out = pico.exec(
        "import os, hashlib, binascii\n"
        "def walk(d):\n"
        "    for name, kind, *_ in os.ilistdir(d):\n"
        "        p = d.rstrip('/') + '/' + name\n"
        "        if kind == 0x4000:\n"
        "            yield from walk(p)\n"
        "        else:\n"
        "            yield p\n"
        "for p in walk('/'):\n"
        "    print(p, binascii.hexlify(hashlib.sha256(open(p, 'rb').read()).digest()).decode())\n")
    return dict(line.split() for line in out.splitlines() if line.startswith("/"))


def one_read(pico, cfg):
    m = Master(pico, *line_settings(cfg))
    try:
        r = m.read_holding_registers(0x1000, count=2, device_id=1)
        assert not r.isError(), r
    finally:
        m.close()


def test_deploy_lifecycle(tmp_path):
    pico, first = deployed(tmp_path)
    with pico:
        # First deploy from a blank flash: every file of the bundle, then the configuration.
        bundle = build.bundle("pico", tmp_path / "expected")
        want = sorted(name for name, _ in bundle.device_files if name != "config.json")
        assert sorted(copied(first.stderr)) == want, first.stderr
        assert "write config.json" in first.stderr
        served = first.stdout.strip().splitlines()[-1]
        assert served == "mbnode is serving on %s: rtu uart0 serial 19200-8E1 unit 1 board pico" % pico.repl_url
        files = device_files(pico)
        for name, data in [(n, (bundle.path / "device" / n).read_bytes()) for n in want]:
            assert files.get("/" + name) == hashlib.sha256(data).hexdigest(), name

        # A power cycle: the board boots from its flash and main.py starts mbnode.
        mark = pico.cdc_mark()
        pico.reset()
        assert ready_words(wait_ready(pico, mark)) == {"rtu": "uart0", "serial": "19200-8E1", "unit": "1",
                                                       "board": "pico"}
        one_read(pico, {})

        # A second deploy of the same: nothing copied, nothing written.
        again = mbnode("deploy", "--board", "pico", "--port", pico.repl_url)
        assert again.returncode == 0, again.stderr
        assert copied(again.stderr) == [] and "write config.json" not in again.stderr, again.stderr
        assert "%d files up to date, 0 to copy, 0 to remove, config.json unchanged" % len(want) in again.stderr
        assert device_files(pico) == files

        # A dry run of a configuration change prints the plan and changes nothing.
        cfg = board_config(115200, "N")
        cfg_file = write_config(tmp_path, cfg)
        mark = pico.cdc_mark()
        dry = mbnode("deploy", "--board", "pico", "--port", pico.repl_url, "--config", str(cfg_file), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "plan (dry run, nothing changed):" in dry.stdout and "write config.json" in dry.stdout, dry.stdout
        assert "copy " not in dry.stdout, dry.stdout
        # Asking stopped mbnode; the dry run lets it run again, with the old settings.
        assert ready_words(wait_ready(pico, mark))["serial"] == "19200-8E1"
        one_read(pico, {})
        assert device_files(pico) == files

        # The change itself: one file (config.json) written; mbnode comes back at 115200 8N2.
        change = mbnode("deploy", "--board", "pico", "--port", pico.repl_url, "--config", str(cfg_file))
        assert change.returncode == 0, change.stderr
        assert copied(change.stderr) == [] and "write config.json" in change.stderr, change.stderr
        assert change.stdout.strip().endswith("rtu uart0 serial 115200-8N2 unit 1 board pico"), change.stdout
        now = device_files(pico)  # (mpremote stops mbnode: the power cycle below starts it again)
        assert {p for p in now if now[p] != files.get(p)} == {"/config.json"}
        assert json.loads(pico.exec("print(open('config.json').read())")) == cfg
        mark = pico.cdc_mark()
        pico.reset()
        assert ready_words(wait_ready(pico, mark))["serial"] == "115200-8N2"
        one_read(pico, cfg)


def test_deploy_onto_the_image_writes_only_the_configuration(tmp_path, tmp_path_factory):
    """The image has mbnode frozen in: a deploy of the same version writes config.json and nothing
    else (a copy on the filesystem would be imported instead of the frozen modules)."""
    pico, _ = image_pico(tmp_path, image_uf2(tmp_path_factory))
    with pico:
        cfg = board_config(115200, "N")
        r = mbnode("deploy", "--board", "pico", "--port", pico.repl_url, "--config", str(write_config(tmp_path, cfg)))
        assert r.returncode == 0, r.stderr
        assert "is frozen in the firmware: nothing of the bundle is copied" in r.stderr, r.stderr
        assert copied(r.stderr) == [] and "write config.json" in r.stderr, r.stderr
        assert r.stdout.strip().endswith("rtu uart0 serial 115200-8N2 unit 1 board pico"), r.stdout
        assert list(device_files(pico)) == ["/config.json"]


def test_refuses_an_older_micropython(tmp_path):
    """A board whose MicroPython reports 1.22 (.mpy 6.2) cannot load the .mpy 6.3 files: the deploy
    says so in one line, with what to flash, and writes nothing."""
    require(OLD_FIRMWARE)
    with Pico(firmware=OLD_FIRMWARE, workdir=tmp_path) as pico:
        pico.wait_cdc(rb">>> ")
        before = device_files(pico)
        r = mbnode("deploy", "--board", "pico", "--port", pico.repl_url)
        assert r.returncode == 1, r.stdout + r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith("mbnode deploy:")]
        assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
        assert "MicroPython 1.22.0 on rp2" in errors[0] and ".mpy 6.2" in errors[0], errors[0]
        assert "flash MicroPython 1.24 or newer for RPI_PICO" in errors[0], errors[0]
        assert "mbnode build --board pico --image" in errors[0], errors[0]
        assert device_files(pico) == before


def test_refuses_another_chips_bundle(tmp_path):
    require()
    with Pico(workdir=tmp_path) as pico:
        pico.wait_cdc(rb">>> ")
        r = mbnode("deploy", "--board", "esp32-c3", "--port", pico.repl_url)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "not the esp32 port that board esp32-c3 needs" in r.stderr, r.stderr
        assert device_files(pico) == {}


def _serve_mip_index(root):
    """A package index in mip's layout on 127.0.0.1 (what `mpremote mip --index` reads)."""
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_umqtt_installed_with_mip_when_missing(tmp_path):
    """The step deploy takes when the bridge is on and the device lacks umqtt.simple: `mpremote mip
    install umqtt.simple` from a package index (here a local one holding the pinned release)."""
    require()
    src = ROOT / ".cache" / "lib" / "umqtt" / "simple.py"
    assert src.exists(), "make setup fetches umqtt.simple"
    mpy = tmp_path / "simple.mpy"
    subprocess.run([str(ROOT / ".cache" / "bin" / "mpy-cross"), "-o", str(mpy), str(src)], check=True)
    data = mpy.read_bytes()
    short = hashlib.sha256(data).hexdigest()[:8]
    index = tmp_path / "index"
    (index / "file" / short[:2]).mkdir(parents=True)
    (index / "file" / short[:2] / short).write_bytes(data)
    pkg = index / "package" / "6" / "umqtt.simple"
    pkg.mkdir(parents=True)
    (pkg / "latest.json").write_text(json.dumps({"hashes": [["umqtt/simple.mpy", short]], "version": "1.3.4"}))
    server = _serve_mip_index(index)
    try:
        with Pico(workdir=tmp_path) as pico:
            pico.wait_cdc(rb">>> ")
            facts = deploy.device_facts(pico.repl_url, [])
            assert facts["umqtt"] is False
            assert deploy.plan({}, facts, b"{}", want_umqtt=True)["umqtt"] is True
            deploy.install_umqtt(pico.repl_url, "http://127.0.0.1:%d" % server.server_address[1])
            # (The plain Pico firmware has no socket module, so umqtt would not import there.)
            assert device_files(pico) == {"/lib/umqtt/simple.mpy": hashlib.sha256(data).hexdigest()}
            facts = deploy.device_facts(pico.repl_url, [])
            assert deploy.plan({}, facts, b"{}", want_umqtt=True)["umqtt"] is False
    finally:
        server.shutdown()
