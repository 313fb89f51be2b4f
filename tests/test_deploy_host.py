"""`mbnode deploy`'s decisions on the host, from what a device reports (the facts its one
`mpremote exec` prints): which boards it refuses and with what advice, and what it copies,
removes and installs. The runs against a device are in tests/mcu/test_deploy.py."""

import hashlib
import subprocess
import sys

import pytest

from conftest import ROOT
from mbnode import VERSION
from mbnode_host import boards, deploy


def facts(version=(1, 25, 0), mpy=0x306 | (4 << 10), platform="rp2", machine="Raspberry Pi Pico with RP2040",
          files=None, root=(), mbnode=(), umqtt=False, network=False, frozen=None):
    return {"version": list(version), "mpy": mpy, "platform": platform, "machine": machine, "release": "1.25.0",
            "files": files or {}, "root": list(root), "mbnode": list(mbnode), "umqtt": umqtt, "network": network,
            "frozen": frozen}


@pytest.mark.parametrize("board, f, words", [
    ("pico", facts(version=(1, 22, 2), mpy=0x206 | (4 << 10)), ["MicroPython 1.22.2 on rp2", ".mpy 6.2",
                                                                  "flash MicroPython 1.24 or newer for RPI_PICO",
                                                                  "mbnode build --board pico --image"]),
    ("pico", facts(version=(1, 23, 0)), ["on rp2 mbnode needs 1.24 or newer", "UART.flush()"]),
    ("pico", facts(platform="esp32", mpy=0x306 | (10 << 10), machine="ESP32 module"),
     ["not the rp2 port that board pico needs"]),
    ("esp32", facts(), ["not the esp32 port that board esp32 needs"]),
    ("esp32-c3", facts(platform="esp32", mpy=0x306 | (10 << 10), machine="Generic ESP32 module with ESP32",
                       network=True), ["its chip is ESP32, and board esp32-c3 has ESP32C3"]),
    ("esp32", facts(platform="esp32", mpy=0x306 | (10 << 10), machine="Generic ESP32S3 module with ESP32S3",
                    network=True), ["its chip is ESP32S3, and board esp32 has ESP32"]),
    ("esp32-c3", facts(platform="esp32", mpy=0x306 | (10 << 10), machine="ESP32C3 module with ESP32C3",
                       network=True), ["native code is xtensawin", "built for rv32imc"]),
    ("pico", facts(frozen="0.0.9"), ["mbnode 0.0.9 frozen in", "flash the image of this version",
                                     "mbnode build --board pico --image"]),
    ("pico-w", facts(), ["has no network module", "RPI_PICO_W"]),
    ("esp32", facts(version=(1, 19, 1), platform="esp32", mpy=0x006 | (10 << 10), network=True,
                    machine="Generic ESP32 module with ESP32"),
     [".mpy 6.0", "flash MicroPython 1.23 or newer for ESP32_GENERIC"]),
])
def test_device_refused_with_what_to_flash(board, f, words):
    with pytest.raises(deploy.DeployError) as e:
        deploy.check_device(boards.info(board), f)
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message, message


@pytest.mark.parametrize("board, f", [
    ("pico", facts()),
    ("pico", facts(version=(1, 28, 0))),
    ("esp32-c3", facts(platform="esp32", mpy=0x306 | (11 << 10), network=True, machine="ESP32C3 module with ESP32C3")),
    ("esp32", facts(version=(1, 23, 0), platform="esp32", mpy=0x306 | (10 << 10), network=True,
                    machine="Generic ESP32 module with ESP32")),
    ("pico", facts(frozen=VERSION)),
])
def test_device_accepted(board, f):
    deploy.check_device(boards.info(board), f)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_plan_copies_what_differs_and_removes_what_shadows():
    files = {"main.py": b"main", "board.mpy": b"board", "mbnode/pdu.mpy": b"pdu", "mbnode/crc.mpy": b"crc"}
    have = {"/main.py": sha(b"main"), "/board.mpy": sha(b"old board"), "/mbnode/pdu.mpy": sha(b"pdu"),
            "/config.json": sha(b"{}")}
    f = facts(files=have, root=["main.py", "board.py", "board.mpy", "boot.py", "notes.py", "mbnode"],
              mbnode=["pdu.mpy", "pdu.py", "gone.mpy", "readme.txt"])
    todo = deploy.plan(files, f, b"{}", want_umqtt=False)
    assert todo["copy"] == ["board.mpy", "mbnode/crc.mpy"]
    # board.py would shadow board.mpy, mbnode/pdu.py pdu.mpy; gone.mpy is an older mbnode's.
    assert todo["remove"] == ["board.py", "mbnode/gone.mpy", "mbnode/pdu.py"]
    assert todo["config"] is False and todo["umqtt"] is False
    assert deploy.plan(files, f, b'{"unit_id": 2}', want_umqtt=False)["config"] is True


def test_plan_on_a_firmware_with_mbnode_frozen_in():
    """Only config.json; whatever of ours lies on the filesystem would shadow the frozen modules."""
    files = {"main.py": b"main", "board.mpy": b"board", "mbnode/pdu.mpy": b"pdu"}
    f = facts(files={"/board.mpy": sha(b"old"), "/mbnode/pdu.mpy": sha(b"pdu")}, mbnode=["pdu.mpy", "old.mpy"],
              frozen=VERSION)
    todo = deploy.plan(files, f, b"{}", want_umqtt=False)
    assert todo["copy"] == []
    assert todo["remove"] == ["board.mpy", "mbnode/old.mpy", "mbnode/pdu.mpy"]
    assert todo["config"] is True


def test_plan_covers_the_mqtt_subpackage():
    """Files of mbnode/mqtt/ are copied into a folder made first; strays there go too, and so do
    the modules of the layout before the subpackage (mbnode/mqtt.mpy, gateway.mpy, ...)."""
    files = {"main.py": b"main", "mbnode/pdu.mpy": b"pdu", "mbnode/mqtt/__init__.mpy": b"",
             "mbnode/mqtt/bridge.mpy": b"bridge", "mbnode/mqtt/textproto.mpy": b"text"}
    f = facts(files={"/mbnode/pdu.mpy": sha(b"pdu"), "/mbnode/mqtt/bridge.mpy": sha(b"bridge")},
              root=["main.py", "mbnode"],
              mbnode=["pdu.mpy", "mqtt.mpy", "gateway.mpy", "relay.mpy", "mqtt", "mqtt/bridge.mpy",
                      "mqtt/bridge.py", "mqtt/old.mpy", "mqtt/notes.txt"])
    todo = deploy.plan(files, f, b"{}", want_umqtt=False)
    assert todo["copy"] == ["main.py", "mbnode/mqtt/__init__.mpy", "mbnode/mqtt/textproto.mpy"]
    assert todo["remove"] == ["mbnode/gateway.mpy", "mbnode/mqtt.mpy", "mbnode/mqtt/bridge.py", "mbnode/mqtt/old.mpy",
                              "mbnode/relay.mpy"]
    assert deploy.folders(todo["copy"]) == ["mbnode", "mbnode/mqtt"]
    assert deploy.folders(["main.py", "board.mpy"]) == []
    assert deploy.folders(["a/b/c/d.mpy", "a/e.mpy"]) == ["a", "a/b", "a/b/c"]


def test_plan_installs_umqtt_only_when_wanted_and_missing():
    assert deploy.plan({}, facts(umqtt=False), b"", want_umqtt=True)["umqtt"] is True
    assert deploy.plan({}, facts(umqtt=True), b"", want_umqtt=True)["umqtt"] is False
    assert deploy.plan({}, facts(umqtt=False), b"", want_umqtt=False)["umqtt"] is False


def test_wifi_option_fills_the_board_section():
    text, mqtt = deploy.config_for("esp32", None, "plant:se:cret")
    assert '"wifi_ssid": "plant"' in text and '"wifi_password": "se:cret"' in text
    assert mqtt is False
    with pytest.raises(deploy.DeployError, match="board pico has no Wi-Fi"):
        deploy.config_for("pico", None, "plant:secret")
    with pytest.raises(deploy.DeployError, match="allowed SSID:PASSWORD"):
        deploy.config_for("esp32", None, "plant")


@pytest.mark.parametrize("bad", ["{", '{"rtu": {"baud": 19200, "parity": "X"}}'])
def test_bad_config_refused_before_touching_the_device(tmp_path, bad):
    """The configuration is checked on the host first; the port (which does not exist here) is
    never opened for a file the board would refuse."""
    cfg = tmp_path / "config.json"
    cfg.write_text(bad)
    r = subprocess.run([sys.executable, "-m", "mbnode_host.cli", "deploy", "--board", "pico", "--port",
                        "socket://127.0.0.1:9", "--config", str(cfg)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2  # refused before anything was done (docs/cli.md)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mbnode deploy: --config %s" % cfg), r.stderr
