"""Configuration validation (the same module the firmware runs)."""

import json

import pytest

from mbnode import config


def test_defaults_fill_everything():
    cfg = config.validate({})
    assert cfg["unit_id"] == 1
    assert cfg["tcp"] == {"enabled": True, "host": "0.0.0.0", "port": 502, "max_clients": 4,
                          "idle_timeout": 0, "persistent": True, "when_full": "refuse", "allow": []}
    assert cfg["channels"]["coils"] == [(0, 0x23F)]
    assert cfg["channels"]["holding_registers"] == [(0, 0x13F), (0x1000, 0x17FF)]


@pytest.mark.parametrize("rtu, stopbits", [
    ({}, 1), ({"parity": "O"}, 1), ({"parity": "N"}, 2), ({"parity": "N", "stopbits": 1}, 1),
    ({"parity": "E", "stopbits": 2}, 2),
])
def test_rtu_defaults_follow_the_serial_line_spec(rtu, stopbits):
    cfg = config.validate({"rtu": rtu})["rtu"]
    assert (cfg["baud"], cfg["stopbits"], cfg["enabled"], cfg["early_reply"]) == (19200, stopbits, False, False)


def test_ranges_accept_lists_and_hex_text():
    cfg = config.validate({"channels": {"coils": [[0, 7], "0x0040-0x004F"]}})
    assert cfg["channels"]["coils"] == [(0, 7), (0x40, 0x4F)]


@pytest.mark.parametrize("given, message", [
    ({"tcp": {"port": 70000}}, "config: tcp.port = 70000: allowed an integer 0..65535"),
    ({"unit_id": 248}, "config: unit_id = 248: allowed an integer 0..247"),
    ({"unit_id": True}, "config: unit_id = true: allowed an integer 0..247"),
    ({"colis": []}, "config: colis = []: unknown key; allowed keys: board, channels, identity, rtu, tcp, unit_id"),
    ({"tcp": {"prot": 1}}, "config: tcp.prot = 1: unknown key"),
    ({"tcp": {"when_full": "drop"}}, 'allowed one of "refuse", "close_idlest"'),
    ({"tcp": {"allow": ["10.0.0"]}}, "config: tcp.allow"),
    ({"channels": {"coils": [[0, 0x240]]}}, "inside 0x0000-0x023F"),
    ({"channels": {"holding_registers": [[0x0FFF, 0x1000]]}}, "inside 0x0000-0x013F, 0x1000-0x17FF"),
    ({"channels": {"input_registers": [[5, 4]]}}, "config: channels.input_registers"),
    ({"identity": {"vendor_name": "x" * 101}}, "at most 100 characters"),
    ({"tcp": []}, "config: tcp = []: allowed a JSON object"),
    ({"board": {"pin": 1}}, "config: board.pin = 1: unknown key"),
    ({"rtu": {"parity": "X"}}, 'config: rtu.parity = "X": allowed one of "E", "N", "O"'),
    ({"rtu": {"baud": 0}}, "config: rtu.baud = 0: allowed an integer 300..4000000"),
    ({"rtu": {"stopbits": 3}}, "config: rtu.stopbits = 3: allowed one of null, 1, 2"),
    ({"rtu": {"enabled": True}, "unit_id": 0}, "config: unit_id = 0: allowed 1..247 when rtu.enabled is true"),
])
def test_bad_values_name_key_value_and_what_is_allowed(given, message):
    with pytest.raises(config.ConfigError) as e:
        config.validate(given)
    assert message in str(e.value)


def test_load_reports_bad_json(tmp_path):
    p = tmp_path / "c.json"
    p.write_text("{unit_id: 1}")
    with pytest.raises(config.ConfigError, match="is not valid JSON"):
        config.load(str(p))
    p.write_text(json.dumps({"unit_id": 0}))
    assert config.load(str(p))["unit_id"] == 0
