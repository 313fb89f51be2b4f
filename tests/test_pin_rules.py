"""Pins a chip or board cannot use are refused with one line saying what is allowed: one case per
rule and board (tests/core/pin_rule_cases.py), checked with the firmware's validation on CPython
and on the unix port (the 32-bit build, as on the boards)."""

import subprocess

import pytest

from conftest import ROOT, micropython_or_fail
from mbnode import config
from mbnode_host import boards
from pin_rule_cases import CASES
from test_boards_unix import board_env


def cpython(board, given):
    try:
        config.validate(given, *boards.rules(board))
        return "OK"
    except config.ConfigError as e:
        return str(e)


@pytest.fixture(scope="module")
def unix_port():
    """{case id: result} from one unix-port run per board."""
    results = {}

    def get(board):
        if board not in results:
            out = subprocess.run([micropython_or_fail(32), "pin_rules.py"], cwd=ROOT / "tests" / "core",
                                 env=board_env(board), capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            results[board] = dict(line.split("\t", 1) for line in out.stdout.splitlines())
        return results[board]

    return get


@pytest.mark.parametrize("case, rule, board, given, message", CASES, ids=[c[0] for c in CASES])
def test_pin_rule(case, rule, board, given, message, unix_port):
    want = message or "OK"
    assert cpython(board, given) == want
    assert unix_port(board)[case] == want


# The rules that apply to each chip (docs/boards.md, "What validation refuses").
RULES = {
    "rp2040": {"no-gpio", "no-adc", "board-pin", "uart-id", "uart-route", "twice"},
    "esp32": {"no-gpio", "flash", "input-only", "no-adc", "adc2-wifi", "board-pin", "uart-id", "twice"},
    "esp32s3": {"no-gpio", "flash", "octal-psram", "no-adc", "adc2-wifi", "board-pin", "uart-id", "twice"},
    "esp32c3": {"no-gpio", "flash", "no-adc", "adc2-wifi", "board-pin", "uart-id", "twice"},
}


@pytest.mark.parametrize("board", boards.MCU_BOARDS)
def test_every_rule_has_a_case_on_every_board(board):
    refused = {rule for _, rule, b, _, message in CASES if b == board and message}
    missing = RULES[boards.info(board).chip] - refused
    assert not missing, "board %s has no case for %s" % (board, ", ".join(sorted(missing)))


@pytest.mark.parametrize("board", boards.MCU_BOARDS)
def test_defaults_pass_their_own_rules(board):
    schema, defaults, check = boards.rules(board)
    cfg = config.validate({}, schema, defaults, check)
    assert cfg["rtu"]["enabled"] and cfg["unit_id"] == 1
    assert cfg["tcp"]["enabled"] is False  # no network, or Wi-Fi not configured yet
    wifi = boards.info(board).wifi
    if wifi:
        assert config.validate({"board": {"wifi_ssid": "plant"}}, schema, defaults, check)["tcp"]["enabled"]


def pin_text(prefix, pins):
    return prefix + " ".join(str(p) for p in pins) if pins else "none"


@pytest.mark.parametrize("board", boards.MCU_BOARDS)
def test_documented_pin_maps_are_the_defaults(board):
    """board.py's docstring and docs/boards.md show the pin map board_config.py defines."""
    from conftest import ROOT

    b = boards.rules(board)[1]["board"]
    prefix = "GP" if boards.info(board).chip == "rp2040" else "GPIO"
    doc = (boards.BOARDS / board / "board.py").read_text()
    table = [line for line in (ROOT / "docs" / "boards.md").read_text().splitlines()
             if line.startswith("| %s " % board) or (board.startswith("pico") and line.startswith("| pico, pico-w |"))]
    for key in ("do_pins", "di_pins", "ai_pins", "ao_pins"):
        text = pin_text(prefix, b[key])
        assert text in doc, (key, text)
        assert any(text in line for line in table), (key, text)
    port = "UART%d: TX %s%d" % (b["rtu_uart"], prefix, b["rtu_tx"])
    assert port in doc and any(port in line for line in table)
    assert ("RX %s%d" % (prefix, b["rtu_rx"])) in doc and ("DE+/RE %s%d" % (prefix, b["rtu_de"])) in doc
