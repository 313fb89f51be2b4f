"""The MQTT relay's local requests (firmware/mbnode/mqtt/relay.py `_local`) on CPython: the request
PDU and, behind it, the Engine's answer share the device's scratch buffer (mbnode.scratch), so the
largest requests must come back whole and right: reads of 125 registers and writes of 123 (the
text protocol's and Modbus' limits; in the memory positions, 0x1000 up), and every coil of the
map (576: the text protocol would take 2000 and 1968, which the Engine refuses on this map).
Each reply is checked against the data model as another master reads it (the Engine with
buffers of its own).
"""

from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.masters import Masters
from mbnode.mqtt import textproto
from mbnode.mqtt.relay import Relay
from mbnode.pdu import Engine
from mbnode.scratch import SCRATCH
from test_extension_rules import Loop

OWN = (["127.0.0.1"], 502, [])


def rig():
    model = DataModel()
    engine = Engine(model, DeviceIdentification({}, 1))
    relay = Relay(engine, 1, OWN, Masters(Loop()), None, None, 2)
    return engine, relay


def ask(relay, text):
    return relay.start(textproto.parse(text.encode(), []))


def read(engine, pdu_hex):
    resp = bytearray(260)
    n = engine.handle(bytearray.fromhex(pdu_hex), 0, len(pdu_hex) // 2, resp, 0)
    return bytes(resp[:n])


def test_the_largest_register_write_and_read_come_back_whole():
    engine, relay = rig()
    values = [(7919 * i + 11) & 0xFFFF for i in range(123)]
    assert ask(relay, "0 1 0 127.0.0.1 502 1 1 16 4097 123 " + ",".join(map(str, values))) == "1 OK"
    assert read(engine, "031000007b") == bytes([3, 246]) + b"".join(v.to_bytes(2, "big") for v in values)
    SCRATCH[:] = b"\xee" * 260  # what an earlier user left there changes nothing
    line = ask(relay, "0 2 0 127.0.0.1 502 1 1 3 4097 125")
    assert line.startswith("2 OK ")
    got = [int(v) for v in line.split()[2:]]
    answer = read(engine, "031000007d")
    assert got == values + [0, 0] == [int.from_bytes(answer[i:i + 2], "big") for i in range(2, 252, 2)]


def test_the_largest_coil_write_and_read_come_back_whole():
    engine, relay = rig()
    bits = [(i * 5 + i // 7) % 3 == 0 for i in range(576)]
    assert ask(relay, "0 3 0 127.0.0.1 502 1 1 15 1 576 " + ",".join("1" if b else "0" for b in bits)) == "3 OK"
    line = ask(relay, "0 4 0 127.0.0.1 502 1 1 1 1 576")
    head, _, values = line.partition(" OK ")
    assert head == "4"
    answer = read(engine, "0100000240")
    assert answer[:2] == bytes([1, 72])
    expect = [(answer[2 + i // 8] >> (i % 8)) & 1 for i in range(576)]
    assert expect == [int(b) for b in bits]
    assert [int(v) for v in values.replace(",", " ").split()] == expect
    refused = read(engine, "01000007d0")  # 2000 bits: more than the map (or the Engine) answers
    assert refused[0] == 0x81
    assert ask(relay, "0 5 0 127.0.0.1 502 1 1 1 1 2000") == "5 ERROR: " + textproto.exception_text(refused[1])


def test_an_exception_answer_is_read_behind_the_request():
    _, relay = rig()
    assert ask(relay, "0 5 0 127.0.0.1 502 1 1 3 65535 2") == "5 ERROR: " + textproto.exception_text(2)
