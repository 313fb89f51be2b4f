"""A board never stops serving because something optional failed (docs/boards.md): Wi-Fi or the
MQTT broker failing at start, a broken config.json. Run on the unix port with the fake
machine/network modules (tests/fakes); tests/core/board_start.py does the serving checks."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT, micropython_or_fail
from mbnode_host import paths
from mbnode_host.sim import free_port
from test_boards_unix import board_env, run_script


def passed(out):
    assert out.returncode == 0 and "1 passed, 0 failed" in out.stdout, out.stdout + out.stderr
    return out.stdout.splitlines()


def in_order(lines, wanted):
    """The wanted lines appear in this order (other lines may come between)."""
    i = 0
    for line in lines:
        if i < len(wanted) and line == wanted[i]:
            i += 1
    assert i == len(wanted), "missing %r in %r" % (wanted[i], lines)


@pytest.mark.parametrize("board", ["pico-w", "esp32"])
def test_wifi_refused_then_joined_then_lost_keeps_rtu_serving(board):
    lines = passed(run_script(board, "board_start.py", "wifi", free_port("127.0.0.1")))
    assert lines[0].startswith("ready tcp 127.0.0.1:") and lines[0].endswith("board %s wifi connecting" % board)
    in_order(lines, ["wifi: plant: no access point found; retrying in 1 s",
                     "wifi: plant: wrong password; retrying in 2 s",
                     "wifi: connected to plant, ip 10.0.0.5",
                     "wifi: lost plant; joining again",
                     "wifi: connected to plant, ip 10.0.0.5"])


@pytest.mark.parametrize("board", ["pico-w", "esp32"])
def test_system_registers_on_a_pin_board(board):
    """MAC text, IPv4 once Wi-Fi joined, the RP2040's temperature (the ESP32 has none the port
    reads calibrated), the reboot command's machine.reset 1 s after its answer."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    ntp_port = udp.getsockname()[1]
    udp.close()
    passed(run_script(board, "board_start.py", "system", free_port("127.0.0.1"), ntp_port))


def test_wifi_attempt_that_never_ends_is_given_up_after_wifi_timeout():
    lines = passed(run_script("esp32-s3", "board_start.py", "wifi_timeout", free_port("127.0.0.1")))
    in_order(lines, ["wifi: plant: not connected after 1 s (status 1); retrying in 1 s",
                     "wifi: connected to plant, ip 10.0.0.5"])


def test_broker_refusing_at_start_keeps_rtu_and_tcp_serving():
    broker = free_port("127.0.0.1")  # nothing listens there
    lines = passed(run_script("esp32-c3", "board_start.py", "broker", free_port("127.0.0.1"), broker,
                              extra_path=[paths.CACHE / "lib"]))
    in_order(lines, ["mqtt: connect to 127.0.0.1:%d: OSError(111,); reconnecting in 1 s" % broker,
                     "mqtt: connect to 127.0.0.1:%d: OSError(111,); reconnecting in 2 s" % broker])


def test_bridge_without_umqtt_is_left_off_on_a_board():
    out = run_script("pico-w", "board_start.py", "no_umqtt", free_port("127.0.0.1"))
    passed(out)
    assert out.stderr.strip() == "mqtt: mqtt.enabled needs umqtt.simple (on a board: mpremote mip install umqtt.simple)"


BROKEN = {
    "bad JSON": ("{unit_id: 1}", "config: {path} is not valid JSON: syntax error in JSON"),
    "cut short": ('{"unit_id": 1,', "config: {path} is not valid JSON: it ends before its last closing bracket"),
    "bad value": (json.dumps({"rtu": {"baud": 1}}), "config: {path}: rtu.baud = 1: allowed an integer 300..4000000"),
    "bad pin": (json.dumps({"board": {"rtu_de": 99}}), None),
    "missing": (None, "config: {path} not found"),
    "unreadable": ("dir", "config: cannot read {path}: [Errno 21] EISDIR"),
}


def broken_config(tmp_path, kind):
    text, message = BROKEN[kind]
    path = tmp_path / "config.json"
    if text == "dir":
        path.mkdir()
    elif text is not None:
        path.write_text(text)
    return path, message


def test_valid_config_prints_nothing_and_unloads_the_start_up_modules(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"rtu": {"baud": 19200}}))
    out = run_script("pico", "board_start.py", "bad_config", path)
    passed(out)  # the script also checks that config, pinrules and board_config are unloaded
    assert out.stderr == ""


def test_mqtt_section_checked_and_its_modules_unloaded(tmp_path):
    """An "mqtt" section (off, with points) loads mbnode.mqtt.config and pointsconfig for the
    check; load_config unloads them and the mbnode.mqtt package with them."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"rtu": {"baud": 19200}, "mqtt": {"enabled": False, "points": [
        {"name": "level", "table": "holding", "address": 0}]}}))
    out = run_script("pico", "board_start.py", "mqtt_checks", path)
    passed(out)  # the script checks that nothing of mbnode.mqtt is left
    assert out.stderr == ""


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("board", ["pico", "pico-w", "esp32", "esp32-s3", "esp32-c3"])
def test_broken_config_prints_one_line_and_serves_the_board_defaults(board, kind, tmp_path):
    path, message = broken_config(tmp_path, kind)
    out = run_script(board, "board_start.py", "bad_config", path)
    lines = passed(out)
    if message is None:  # the pin rules' own message
        from mbnode_host import boards

        chip = boards.info(board).chip
        prefix = "GP" if chip == "rp2040" else "GPIO"
        message = "config: %s: board.rtu_de = 99: %s99 does not exist on the " % (path, prefix)
        assert out.stderr.startswith(message), out.stderr
    else:
        assert out.stderr == "%s; starting with the defaults of board %s\n" % (message.format(path=path), board)
    uart = 0 if board.startswith("pico") else 2 if board == "esp32" else 1
    if kind == "missing":  # not configured yet: the defaults alone, no fault (no system registers)
        assert lines[:1] == ["ready rtu uart%d serial 19200-8E1 unit 1 board %s" % (uart, board)]
        return
    # Refused: the system registers come with the defaults (0x200F shows the fault): their settings file's line first.
    assert lines[:2] == ["settings.bin: no intact saved state, starting from the configuration",
                         "ready rtu uart%d serial 19200-8E1 unit 1 system 0x2000 board %s" % (uart, board)]


def test_broken_config_on_the_real_entry_point_prints_the_line_then_ready(tmp_path):
    """firmware/main.py as a board runs it: the error line, the ready line, and the loop keeps
    running (stopped here with SIGINT, which it takes as the normal way out)."""
    binary = micropython_or_fail(32)
    path = tmp_path / "config.json"
    path.write_text('{"tcp": {"port": 70000}}')
    # Sources compile on the device here (no .mpy), which needs more heap than a board uses.
    proc = subprocess.Popen([binary, "-X", "heapsize=128K", str(ROOT / "firmware" / "main.py"), str(path)],
                            env=board_env("pico"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "settings.bin: no intact saved state, starting from the configuration\n"
        ready = proc.stdout.readline()
        assert ready == "ready rtu uart0 serial 19200-8E1 unit 1 system 0x2000 board pico\n"
        time.sleep(0.2)  # not a synchronisation: only gives a crash the chance to show
        assert proc.poll() is None, proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert proc.stderr.read() == ("config: %s: tcp.port = 70000: allowed an integer 0..65535; starting with the "
                                  "defaults of board pico\n" % path)
