"""The configuration fault (mbnode.health.FAULT_CONFIG, status register 0x200F bit 0): a refused
config.json makes a board print the refusal on one line and serve its defaults, the fault
readable in the status registers (docs/register-map.md, docs/boards.md).

The real firmware on the 32-bit unix port through `mbnode sim --keep-serving`, which makes the
simulator act as a board on a refused configuration (its defaults: the command line's TCP
address and control channel over the built-in ones); pymodbus reads the registers.
"""

import struct

import pytest

from conftest import need
from mbtest import ok, pymodbus, pymodbus_client, unit

FAULTS = 0x200F
FAULT_CONFIG = 1  # mbnode.health's bits, as docs/register-map.md gives them
FAULT_FLASH = 2
NAME = 0x2020  # the device name, 16 registers of text


@pytest.fixture(autouse=True)
def _need_pymodbus():
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


def text(regs):
    return b"".join(struct.pack(">H", v) for v in regs).rstrip(b"\0").decode()


def status(sim):
    """(faults by FC04, by FC03, the device name) from the status registers."""
    with pymodbus_client(sim) as c:
        by4 = ok(c.read_input_registers(FAULTS, count=1, **unit(1))).registers[0]
        by3 = ok(c.read_holding_registers(FAULTS, count=1, **unit(1))).registers[0]
        name = text(ok(c.read_input_registers(NAME, count=16, **unit(1))).registers)
    return by4, by3, name


@pytest.mark.parametrize("kind, given, reason", [
    ("bad value", '{"unit_id": 7, "identity": {"device_name": "refused"}, "rtu": {"baud": 1}}',
     "rtu.baud = 1: allowed an integer 300..4000000"),
    ("not JSON", '{"unit_id": 7, "identity": {"device_name": "refused"}',
     "is not valid JSON: it ends before its last closing bracket"),
])
def test_a_refused_configuration_serves_the_defaults_with_the_fault_bit(start_sim, tmp_path, kind, given, reason):
    path = tmp_path / "config.json"
    path.write_text(given)
    sim = start_sim(extra=("--keep-serving", "--config", str(path)))
    assert "unit 1 system 0x2000" in sim.ready  # the defaults (unit 1), with the status registers
    by4, by3, name = status(sim)
    assert by4 == by3 == FAULT_CONFIG  # FAULT_FLASH clear: nothing was saved, nothing failed
    assert name == "mbnode"  # identity.device_name's default, not the refused file's
    assert sim.stop() == 0
    err = sim.proc.stderr.read()
    sep = ": " if kind == "bad value" else " "
    assert err == "config: %s%s%s; starting with the defaults of board unix\n" % (path, sep, reason)


def test_a_good_configuration_has_no_fault(start_sim, tmp_path):
    cfg = {"identity": {"device_name": "good"}, "system": {"settings": str(tmp_path / "settings.bin"), "ntp": ""}}
    sim = start_sim(config=cfg, extra=("--keep-serving",))
    by4, by3, name = status(sim)
    assert (by4, by3, name) == (0, 0, "good")
    assert by4 & FAULT_FLASH == 0
    assert sim.stop() == 0
    assert sim.proc.stderr.read() == ""
