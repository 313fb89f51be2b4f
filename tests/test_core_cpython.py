"""The protocol core under CPython: the shared PDU cases and the 32-bit memory API."""

import pytest

import pdu_cases
import pdu_guard_cases
from mbnode import memory32
from mbnode.datamodel import HOLDING, DataModel


@pytest.mark.parametrize("case", pdu_cases.CASES, ids=[c[0] for c in pdu_cases.CASES])
def test_pdu_case(case):
    assert pdu_cases.run_case(case) == []


@pytest.mark.parametrize("case", pdu_guard_cases.CASES, ids=[c[0] for c in pdu_guard_cases.CASES])
def test_pdu_guard_case(case):
    """Write protection (mbnode.protect) and a register block outside the map (Engine.blocks)."""
    assert pdu_cases.run_case(case) == []


def test_case_count_covers_every_function_code():
    fcs = {int(step[0].split()[0], 16) for case in pdu_cases.CASES for step in case[2]}
    assert {1, 2, 3, 4, 5, 6, 15, 16, 22, 23, 43} <= fcs


@pytest.mark.parametrize("value, low, high", [
    (0, 0, 0), (1, 1, 0), (0x12345678, 0x5678, 0x1234), (0xFFFFFFFF, 0xFFFF, 0xFFFF),
    (-1, 0xFFFF, 0xFFFF), (-2147483648, 0x0000, 0x8000), (2147483647, 0xFFFF, 0x7FFF),
])
def test_words_lower_half_first(value, low, high):
    assert memory32.u32_to_words(value) == (low, high)
    assert memory32.words_to_u32(low, high, signed=value < 0) == value


@pytest.mark.parametrize("bad", [-2147483649, 4294967296])
def test_words_out_of_range(bad):
    with pytest.raises(ValueError, match="allowed -2147483648..4294967295"):
        memory32.u32_to_words(bad)


def test_positions_map_to_registers():
    assert memory32.mem_register(1) == 0x1000
    assert memory32.mem_register(2) == 0x1002
    assert memory32.mem_register(1024) == 0x17FE
    for bad in (0, 1025):
        with pytest.raises(ValueError, match="allowed 1..1024"):
            memory32.mem_register(bad)


def test_position_api_round_trip():
    m = DataModel()
    memory32.set_u32(m, 1024, -5)
    assert memory32.get_i32(m, 1024) == -5
    assert memory32.get_u32(m, 1024) == 0xFFFFFFFB
    assert m.get_reg(HOLDING, 0x17FE) == 0xFFFB and m.get_reg(HOLDING, 0x17FF) == 0xFFFF
    memory32.set_u32(m, 3, 0x80000000)
    assert memory32.get_i32(m, 3) == -0x80000000


def test_an_output_subscriber_that_raises_is_reported_on_one_line(capsys):
    case = [c for c in pdu_cases.CASES if c[3].get("failing_output")][0]
    assert pdu_cases.run_case(case) == []
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["mbnode: error in output subscriber _failing_output: RuntimeError('output driver failed')"] * 2


def test_an_unsubscribed_part_hears_no_more():
    m = DataModel()
    heard = []

    def part(table, first, count):
        heard.append((table, first, count))

    m.subscribe(part)
    assert m.outputs_written(HOLDING, 4, 2)
    m.unsubscribe(part)
    assert m.outputs_written(HOLDING, 5, 1)
    assert heard == [(HOLDING, 4, 2)]
