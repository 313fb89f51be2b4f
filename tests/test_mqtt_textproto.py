"""The MQTT gateway's text protocol (mbnode.mqtt.textproto, seeds/000): parsing, PDUs, reply lines.

Expected PDUs and reply lines are written out by hand from the seed and the Modbus spec.
"""

import binascii

import pytest

from mbnode.mqtt import refusals, textproto, turnaway
from mbnode.datamodel import COILS, HOLDING, DataModel
from mbnode.devid import DeviceIdentification
from mbnode.mqtt.textproto import CONN, SERIAL, TCP, RequestError
from mbnode.pdu import Engine

IPV6 = "2001:0db8:0000:0000:0000:8a2e:0370:7334"
MAX_COOKIE = "18446744073709551615"


def hx(text):
    return binascii.unhexlify(text.replace(" ", ""))


def pdu_of(line, **kw):
    req = textproto.parse(line, **kw)
    buf = bytearray(260)
    n = textproto.build_pdu(req, buf)
    return req, bytes(buf[:n])


def err(line, **kw):
    with pytest.raises(RequestError) as e:
        textproto.parse(line, **kw)
    return e.value.args[0]


def tcp(fc, first, rest, cookie="7"):
    return "0 %s 0 192.168.1.1 502 5 1 %s %s %s" % (cookie, fc, first, rest)


def answer(req, response_hex):
    pdu = hx(response_hex)
    return textproto.format_response(req, pdu, len(pdu))


# --- the seed's examples ----------------------------------------------------------------------

def test_seed_example_reboot_fc6():
    req, pdu = pdu_of("0 65432 0 192.168.1.1 502 5 1 6 206 1")
    assert (req.kind, req.cookie, req.ip_type, req.host, req.port, req.timeout, req.unit) == (
        TCP, "65432", 0, "192.168.1.1", 502, 5, 1)
    assert (req.fc, req.address, req.value) == (6, 205, 1)  # register number 206 = address 205
    assert pdu == hx("06 00CD 0001")
    assert answer(req, "06 00CD 0001") == "65432 OK"


def test_seed_example_uptime_fc3():
    req, pdu = pdu_of("0 65432 0 192.168.1.1 502 5 1 3 2 2")
    assert (req.fc, req.address, req.count) == (3, 1, 2)
    assert pdu == hx("03 0001 0002")
    assert answer(req, "03 04 0000 15D6") == "65432 OK 0 5590"


def test_seed_example_as_mosquitto_pub_wraps_it():
    # The seed's mosquitto_pub example breaks the payload over two lines, with two spaces.
    req, pdu = pdu_of("0 65432 0  \n192.168.1.1 502 5 1 3 2 2")
    assert req.host == "192.168.1.1" and pdu == hx("03 0001 0002")
    assert answer(req, "03 04 0000 15D6") == "65432 OK 0 5590"


def engine_round_trip(engine, line):
    req, pdu = pdu_of(line)
    resp = bytearray(260)
    n = engine.handle(pdu, 0, len(pdu), resp, 0)
    return textproto.format_response(req, resp, n)


def test_seed_examples_against_the_local_engine():
    model = DataModel()
    model.set_reg(HOLDING, 1, 0)
    model.set_reg(HOLDING, 2, 5590)
    engine = Engine(model, DeviceIdentification({}, 1))
    assert engine_round_trip(engine, "0 65432 0 192.168.1.1 502 5 1 3 2 2") == "65432 OK 0 5590"
    assert engine_round_trip(engine, "0 65432 0 192.168.1.1 502 5 1 6 206 1") == "65432 OK"
    assert model.get_reg(HOLDING, 205) == 1


def test_engine_writes_reads_and_exceptions():
    model = DataModel()
    engine = Engine(model, DeviceIdentification({}, 1))
    assert engine_round_trip(engine, tcp(16, 0x41, "3 1,65535,32768")) == "7 OK"
    assert engine_round_trip(engine, tcp(3, 0x41, 3)) == "7 OK 1 65535 32768"
    assert engine_round_trip(engine, tcp(15, 1, "10 1,0,1,1,0,0,0,0,1,1")) == "7 OK"
    assert [model.get_bit(COILS, i) for i in range(10)] == [1, 0, 1, 1, 0, 0, 0, 0, 1, 1]
    assert engine_round_trip(engine, tcp(1, 1, 10)) == "7 OK 1 0 1 1 0 0 0 0 1 1"
    assert engine_round_trip(engine, tcp(5, 3, 0)) == "7 OK"
    assert engine_round_trip(engine, tcp(1, 1, 4)) == "7 OK 1 0 0 1"
    # Register 0x0140 (number 321) is outside the map; onboard AO is 10-bit.
    assert engine_round_trip(engine, tcp(3, 321, 1)) == "7 ERROR: Modbus exception 2 (illegal data address)"
    assert engine_round_trip(engine, tcp(6, 1, 1024)) == "7 ERROR: Modbus exception 3 (illegal data value)"
    # 2000 coils is the gateway's limit, mbnode's own is 0x240.
    assert engine_round_trip(engine, tcp(1, 1, 2000)) == "7 ERROR: Modbus exception 3 (illegal data value)"


# --- every format -------------------------------------------------------------------------------

def test_format_0_ipv4_ipv6_hostname():
    req = textproto.parse("0 1 0 10.0.0.2 1502 999 255 4 65536 1")
    assert (req.kind, req.ip_type, req.host, req.port, req.timeout, req.unit, req.address) == (
        TCP, 0, "10.0.0.2", 1502, 999, 255, 65535)
    req = textproto.parse("0 1 1 %s 502 1 1 4 1 1" % IPV6)
    assert (req.ip_type, req.host) == (1, IPV6)
    req = textproto.parse("0 1 1 2001:0DB8:0000:0000:0000:8A2E:0370:7334 502 1 1 4 1 1")
    assert req.host == "2001:0DB8:0000:0000:0000:8A2E:0370:7334"
    req = textproto.parse("0 1 2 plc-7.factory.example 502 1 1 4 1 1")
    assert (req.ip_type, req.host) == (2, "plc-7.factory.example")


def test_ipv4_is_read_as_decimal_and_normalised():
    assert textproto.parse("0 1 0 010.001.000.255 502 1 1 4 1 1").host == "10.1.0.255"


def test_format_1_serial():
    req, pdu = pdu_of(b"1 42 rs485 3 17 4 10 2")
    assert (req.kind, req.cookie, req.device, req.timeout, req.unit, req.fc, req.address, req.count) == (
        SERIAL, "42", "rs485", 3, 17, 4, 9, 2)
    assert req.host is None and req.ip_type is None
    assert pdu == hx("04 0009 0002")
    assert textproto.parse("1 42 rs485 3 17 4 10 2", serial_ids=("rs485", "rs232")).device == "rs485"


def test_format_2_connection_management():
    req = textproto.parse("2 5 0 0 0 192.168.1.20 502 10")
    assert (req.kind, req.cookie, req.index, req.action) == (CONN, "5", 0, textproto.OPEN)
    assert (req.ip_type, req.host, req.port, req.timeout) == (0, "192.168.1.20", 502, 10)
    req = textproto.parse("2 5 7 0 1 %s 502 1" % IPV6)
    assert (req.index, req.ip_type, req.host) == (7, 1, IPV6)
    req = textproto.parse("2 6 3 1")
    assert (req.index, req.action, req.host) == (3, textproto.CLOSE, None)
    req = textproto.parse("2 6 3 2")
    assert req.action == textproto.STATUS
    assert textproto.ok(req) == "6 OK"
    assert textproto.status(req, True) == "6 OK 1"
    assert textproto.status(req, False) == "6 OK 0"


def test_format_2_open_without_a_target_is_a_reopen():
    """seeds/000: OPEN "reopen[s] an already open connection with the same parameters"; the
    target is left to mbnode.mqtt.relay (the slot's last one)."""
    req = textproto.parse(" 2  9 4 0 \n")
    assert (req.kind, req.cookie, req.index, req.action) == (CONN, "9", 4, textproto.OPEN)
    assert (req.ip_type, req.host, req.port, req.timeout) == (None, None, None, None)
    assert refusals.never_opened(req) == (
        "9 ERROR: connection index 4 was never opened: allowed 0 (open) with IP_TYPE IP PORT TIMEOUT")


def test_bytes_and_text_parse_alike_with_any_whitespace():
    a = textproto.parse(b"0 9 0 1.2.3.4 502 5 1 3 1 1")
    b = textproto.parse("\t0  9 0 1.2.3.4\r\n502 5 1 3 1 1\n")
    assert vars(a) == vars(b)


# --- every function: the request PDU ------------------------------------------------------------

@pytest.mark.parametrize("fc, first, rest, pdu", [
    (1, 1, "1", "01 0000 0001"),
    (1, 63537, "2000", "01 F830 07D0"),
    (2, 17, "9", "02 0010 0009"),
    (3, 1, "125", "03 0000 007D"),
    (4, 65536, "1", "04 FFFF 0001"),
    (5, 4, "1", "05 0003 FF00"),
    (5, 4, "0", "05 0003 0000"),
    (6, 1, "65535", "06 0000 FFFF"),
    (6, 1, "0", "06 0000 0000"),
    (15, 1, "1 1", "0F 0000 0001 01 01"),
    (15, 20, "10 1,0,1,1,0,0,0,0,1,1", "0F 0013 000A 02 0D 03"),
    (15, 1, "9 0,0,0,0,0,0,0,0,1", "0F 0000 0009 02 00 01"),
    (16, 1, "1 0", "10 0000 0001 02 0000"),
    (16, 0x1001, "2 22136,4660", "10 1000 0002 04 5678 1234"),
    (16, 1, "3 00001,65535,256", "10 0000 0003 06 0001 FFFF 0100"),
])
def test_request_pdu_per_function(fc, first, rest, pdu):
    req, built = pdu_of(tcp(fc, first, rest))
    assert built == hx(pdu)


def test_largest_write_requests_fill_a_pdu():
    values = [(i * 7) % 2 for i in range(1968)]
    req, pdu = pdu_of(tcp(15, 1, "1968 " + ",".join(str(v) for v in values)))
    packed = bytearray(246)
    for i, v in enumerate(values):
        packed[i // 8] |= v << (i % 8)
    assert pdu == hx("0F 0000 07B0 F6") + bytes(packed)
    regs = [(i * 523) % 65536 for i in range(123)]
    req, pdu = pdu_of(tcp(16, 2, "123 " + ",".join(str(v) for v in regs)))
    assert pdu == hx("10 0001 007B F6") + b"".join(v.to_bytes(2, "big") for v in regs)
    assert len(pdu) == 252


def test_count_0_reads_need_no_transaction():
    for fc in (3, 4):
        req, pdu = pdu_of(tcp(fc, 10, 0))
        assert req.count == 0 and pdu == b""
        assert textproto.format_response(req, None, 0) == "7 OK"


# --- every range, both sides --------------------------------------------------------------------

@pytest.mark.parametrize("line, field, value", [
    ("0 7 0 1.2.3.4 1 5 1 3 1 1", "port", 1),
    ("0 7 0 1.2.3.4 65535 5 1 3 1 1", "port", 65535),
    ("0 7 0 1.2.3.4 502 1 1 3 1 1", "timeout", 1),
    ("0 7 0 1.2.3.4 502 999 1 3 1 1", "timeout", 999),
    ("0 7 0 1.2.3.4 502 5 1 3 1 1", "unit", 1),
    ("0 7 0 1.2.3.4 502 5 255 3 1 1", "unit", 255),
    ("0 7 0 1.2.3.4 502 5 1 3 1 1", "address", 0),
    ("0 7 0 1.2.3.4 502 5 1 3 65536 1", "address", 65535),
    (tcp(1, 1, 1), "count", 1),
    (tcp(1, 1, 2000), "count", 2000),
    (tcp(2, 1, 2000), "count", 2000),
    (tcp(1, 63537, 2000), "count", 2000),
    (tcp(3, 1, 0), "count", 0),
    (tcp(3, 1, 125), "count", 125),
    (tcp(4, 1, 125), "count", 125),
    (tcp(3, 65412, 125), "count", 125),
    (tcp(3, 65536, 1), "count", 1),
    (tcp(5, 1, 0), "value", 0),
    (tcp(5, 1, 1), "value", 1),
    (tcp(6, 1, 0), "value", 0),
    (tcp(6, 1, 65535), "value", 65535),
    (tcp(15, 1, "1 0"), "count", 1),
    (tcp(15, 1, "1968 " + ",".join(["1"] * 1968)), "count", 1968),
    (tcp(15, 63569, "1968 " + ",".join(["0"] * 1968)), "count", 1968),
    (tcp(16, 1, "1 0"), "count", 1),
    (tcp(16, 1, "123 " + ",".join(["65535"] * 123)), "count", 123),
    (tcp(16, 65414, "123 " + ",".join(["0"] * 123)), "count", 123),
    ("2 7 0 2", "index", 0),
    ("2 7 7 2", "index", 7),
    ("2 7 7 0 0 1.2.3.4 502 1", "timeout", 1),
    ("2 7 7 0 0 1.2.3.4 65535 999", "port", 65535),
    ("0 0 0 1.2.3.4 502 5 1 3 1 1", "cookie", "0"),
    ("0 %s 0 1.2.3.4 502 5 1 3 1 1" % MAX_COOKIE, "cookie", MAX_COOKIE),
    ("0 000%s 0 1.2.3.4 502 5 1 3 1 1" % MAX_COOKIE, "cookie", "000" + MAX_COOKIE),
    ("0 18446744073709551614 0 1.2.3.4 502 5 1 3 1 1", "cookie", "18446744073709551614"),
    ("0 9999999999999999999 0 1.2.3.4 502 5 1 3 1 1", "cookie", "9999999999999999999"),
])
def test_range_limits_accepted(line, field, value):
    assert getattr(textproto.parse(line), field) == value


@pytest.mark.parametrize("line, reply", [
    ("0 7 0 1.2.3.4 0 5 1 3 1 1", "7 ERROR: port 0: allowed 1..65535"),
    ("0 7 0 1.2.3.4 65536 5 1 3 1 1", "7 ERROR: port 65536: allowed 1..65535"),
    ("0 7 0 1.2.3.4 502 0 1 3 1 1", "7 ERROR: timeout 0: allowed 1..999"),
    ("0 7 0 1.2.3.4 502 1000 1 3 1 1", "7 ERROR: timeout 1000: allowed 1..999"),
    ("0 7 0 1.2.3.4 502 5 0 3 1 1", "7 ERROR: server id 0: allowed 1..255"),
    ("0 7 0 1.2.3.4 502 5 256 3 1 1", "7 ERROR: server id 256: allowed 1..255"),
    ("0 7 0 1.2.3.4 502 5 1 0 1 1", "7 ERROR: function 0: allowed 1, 2, 3, 4, 5, 6, 15, 16"),
    ("0 7 0 1.2.3.4 502 5 1 7 1 1", "7 ERROR: function 7: allowed 1, 2, 3, 4, 5, 6, 15, 16"),
    ("0 7 0 1.2.3.4 502 5 1 14 1 1", "7 ERROR: function 14: allowed 1, 2, 3, 4, 5, 6, 15, 16"),
    ("0 7 0 1.2.3.4 502 5 1 17 1 1", "7 ERROR: function 17: allowed 1, 2, 3, 4, 5, 6, 15, 16"),
    ("0 7 0 1.2.3.4 502 5 1 3 0 1", "7 ERROR: first register 0: allowed 1..65536"),
    ("0 7 0 1.2.3.4 502 5 1 3 65537 1", "7 ERROR: first register 65537: allowed 1..65536"),
    (tcp(1, 1, 0), "7 ERROR: count 0: allowed 1..2000"),
    (tcp(1, 1, 2001), "7 ERROR: count 2001: allowed 1..2000"),
    (tcp(2, 1, 0), "7 ERROR: count 0: allowed 1..2000"),
    (tcp(2, 1, 2001), "7 ERROR: count 2001: allowed 1..2000"),
    (tcp(1, 63538, 2000), "7 ERROR: count 2000: allowed 1..1999 from first register 63538"),
    (tcp(3, 1, 126), "7 ERROR: count 126: allowed 0..125"),
    (tcp(4, 1, 126), "7 ERROR: count 126: allowed 0..125"),
    (tcp(3, 65413, 125), "7 ERROR: count 125: allowed 0..124 from first register 65413"),
    (tcp(4, 65536, 2), "7 ERROR: count 2: allowed 0..1 from first register 65536"),
    (tcp(5, 1, 2), "7 ERROR: value 2: allowed 0..1"),
    (tcp(6, 1, 65536), "7 ERROR: value 65536: allowed 0..65535"),
    (tcp(15, 1, "0 1"), "7 ERROR: count 0: allowed 1..1968"),
    (tcp(15, 1, "1969 1"), "7 ERROR: count 1969: allowed 1..1968"),
    (tcp(15, 63570, "1968 1"), "7 ERROR: count 1968: allowed 1..1967 from first register 63570"),
    (tcp(16, 1, "0 1"), "7 ERROR: count 0: allowed 1..123"),
    (tcp(16, 1, "124 1"), "7 ERROR: count 124: allowed 1..123"),
    (tcp(16, 65415, "123 1"), "7 ERROR: count 123: allowed 1..122 from first register 65415"),
    ("2 7 8 2", "7 ERROR: connection index 8: allowed 0..7"),
    ("2 7 0 3", "7 ERROR: action 3: allowed 0 (open), 1 (close), 2 (status)"),
    ("2 7 0 0 0 1.2.3.4 502 0", "7 ERROR: timeout 0: allowed 1..999"),
    ("2 7 0 0 0 1.2.3.4 502 1000", "7 ERROR: timeout 1000: allowed 1..999"),
    ("2 7 0 0 0 1.2.3.4 0 5", "7 ERROR: port 0: allowed 1..65535"),
    ("0 7 3 1.2.3.4 502 5 1 3 1 1", "7 ERROR: IP type 3: allowed 0 (IPv4), 1 (IPv6), 2 (hostname)"),
    ("3 7 0 2", "7 ERROR: request type 3: allowed 0 (Modbus TCP), 1 (serial), 2 (connection)"),
    ("0 18446744073709551616 0 1.2.3.4 502 5 1 3 1 1",
     "ERROR: cookie 18446744073709551616: allowed 0..18446744073709551615"),
    ("0 99999999999999999999 0 1.2.3.4 502 5 1 3 1 1",
     "ERROR: cookie 99999999999999999999: allowed 0..18446744073709551615"),
    ("0 100000000000000000000 0 1.2.3.4 502 5 1 3 1 1",
     "ERROR: cookie 100000000000000000000: allowed 0..18446744073709551615"),
])
def test_range_limits_refused(line, reply):
    assert err(line) == reply


# --- malformed requests: each names the field and what is allowed ---------------------------------

V15 = "comma-separated values 0..1 without spaces"
V16 = "comma-separated values 0..65535 without spaces"


@pytest.mark.parametrize("line, reply", [
    ("", "ERROR: missing request type: allowed 0 (Modbus TCP), 1 (serial), 2 (connection)"),
    (" \n\t ", "ERROR: missing request type: allowed 0 (Modbus TCP), 1 (serial), 2 (connection)"),
    ("0", "ERROR: missing cookie: allowed 0..18446744073709551615"),
    ("0 abc 0 1.2.3.4 502 5 1 3 1 1", "ERROR: cookie abc: allowed 0..18446744073709551615"),
    ("0 -1 0 1.2.3.4 502 5 1 3 1 1", "ERROR: cookie -1: allowed 0..18446744073709551615"),
    ("0 +1 0 1.2.3.4 502 5 1 3 1 1", "ERROR: cookie +1: allowed 0..18446744073709551615"),
    ("0 1.5 0 1.2.3.4 502 5 1 3 1 1", "ERROR: cookie 1.5: allowed 0..18446744073709551615"),
    ("0 0x10 0 1.2.3.4 502 5 1 3 1 1", "ERROR: cookie 0x10: allowed 0..18446744073709551615"),
    ("0 " + "9" * 40 + " 0", "ERROR: cookie 999999999999999999999999...: allowed 0..18446744073709551615"),
    ("x 7 0 1.2.3.4 502 5 1 3 1 1", "7 ERROR: request type x: allowed 0 (Modbus TCP), 1 (serial), 2 (connection)"),
    ("0 7", "7 ERROR: missing IP type: allowed 0 (IPv4), 1 (IPv6), 2 (hostname)"),
    ("0 7 0", "7 ERROR: missing IP: allowed an IPv4 address such as 192.168.1.1"),
    ("0 7 0 256.1.1.1 502 5 1 3 1 1", "7 ERROR: IP 256.1.1.1: allowed an IPv4 address such as 192.168.1.1"),
    ("0 7 0 1.2.3 502 5 1 3 1 1", "7 ERROR: IP 1.2.3: allowed an IPv4 address such as 192.168.1.1"),
    ("0 7 0 1.2.3.4.5 502 5 1 3 1 1", "7 ERROR: IP 1.2.3.4.5: allowed an IPv4 address such as 192.168.1.1"),
    ("0 7 0 1.2..4 502 5 1 3 1 1", "7 ERROR: IP 1.2..4: allowed an IPv4 address such as 192.168.1.1"),
    ("0 7 0 1.2.3.0004 502 5 1 3 1 1", "7 ERROR: IP 1.2.3.0004: allowed an IPv4 address such as 192.168.1.1"),
    ("0 7 0 plc.local 502 5 1 3 1 1", "7 ERROR: IP plc.local: allowed an IPv4 address such as 192.168.1.1"),
    ("0 7 1 2001:db8::1 502 5 1 3 1 1",
     "7 ERROR: IP 2001:db8::1: allowed an IPv6 address in full form such as " + IPV6),
    ("0 7 1 2001:0db8:0000:0000:0000:8a2e:0370:733g 502 5 1 3 1 1",
     "7 ERROR: IP 2001:0db8:0000:0000:0000...: allowed an IPv6 address in full form such as " + IPV6),
    ("0 7 1 2001:0db8:0000:0000:0000:8a2e:0370 502 5 1 3 1 1",
     "7 ERROR: IP 2001:0db8:0000:0000:0000...: allowed an IPv6 address in full form such as " + IPV6),
    ("0 7 1 192.168.1.1 502 5 1 3 1 1",
     "7 ERROR: IP 192.168.1.1: allowed an IPv6 address in full form such as " + IPV6),
    ("0 7 2 -plc.local 502 5 1 3 1 1", "7 ERROR: IP -plc.local: allowed a hostname of letters, digits, hyphens and dots"),
    ("0 7 2 plc_1 502 5 1 3 1 1", "7 ERROR: IP plc_1: allowed a hostname of letters, digits, hyphens and dots"),
    ("0 7 2 plc..local 502 5 1 3 1 1", "7 ERROR: IP plc..local: allowed a hostname of letters, digits, hyphens and dots"),
    ("0 7 0 1.2.3.4", "7 ERROR: missing port: allowed 1..65535"),
    ("0 7 0 1.2.3.4 http 5 1 3 1 1", "7 ERROR: port http: allowed 1..65535"),
    ("0 7 0 1.2.3.4 5\u00e92 5 1 3 1 1", "7 ERROR: port 5??2: allowed 1..65535"),
    ("0 7 0 1.2.3.4 502", "7 ERROR: missing timeout: allowed 1..999"),
    ("0 7 0 1.2.3.4 502 5s 1 3 1 1", "7 ERROR: timeout 5s: allowed 1..999"),
    ("0 7 0 1.2.3.4 502 -5 1 3 1 1", "7 ERROR: timeout -5: allowed 1..999"),
    ("0 7 0 1.2.3.4 502 5", "7 ERROR: missing server id: allowed 1..255"),
    ("0 7 0 1.2.3.4 502 5 1", "7 ERROR: missing function: allowed 1, 2, 3, 4, 5, 6, 15, 16"),
    ("0 7 0 1.2.3.4 502 5 1 0x03 1 1", "7 ERROR: function 0x03: allowed 1, 2, 3, 4, 5, 6, 15, 16"),
    ("0 7 0 1.2.3.4 502 5 1 3", "7 ERROR: missing first register: allowed 1..65536"),
    ("0 7 0 1.2.3.4 502 5 1 3 1", "7 ERROR: missing count: allowed 0..125"),
    ("0 7 0 1.2.3.4 502 5 1 1 1", "7 ERROR: missing count: allowed 1..2000"),
    ("0 7 0 1.2.3.4 502 5 1 3 1 1 9", "7 ERROR: extra field 9: nothing allowed after count"),
    ("0 7 0 1.2.3.4 502 5 1 5 1", "7 ERROR: missing value: allowed 0..1"),
    ("0 7 0 1.2.3.4 502 5 1 5 1 ON", "7 ERROR: value ON: allowed 0..1"),
    ("0 7 0 1.2.3.4 502 5 1 5 1 1 1", "7 ERROR: extra field 1: nothing allowed after value"),
    ("0 7 0 1.2.3.4 502 5 1 6 1 -1", "7 ERROR: value -1: allowed 0..65535"),
    ("0 7 0 1.2.3.4 502 5 1 15 1 3", "7 ERROR: missing values: allowed 3 " + V15),
    ("0 7 0 1.2.3.4 502 5 1 15 1 3 1,0", "7 ERROR: values 1,0: 2 items for count 3: allowed 3 " + V15),
    ("0 7 0 1.2.3.4 502 5 1 15 1 3 1,0,1,1", "7 ERROR: values 1,0,1,1: 4 items for count 3: allowed 3 " + V15),
    ("0 7 0 1.2.3.4 502 5 1 15 1 3 1,2,0", "7 ERROR: values 1,2,0: item 2 is 2: allowed 0..1"),
    ("0 7 0 1.2.3.4 502 5 1 15 1 3 1,,0", "7 ERROR: values 1,,0: item 2 is empty: allowed 3 " + V15),
    ("0 7 0 1.2.3.4 502 5 1 15 1 3 1,0,", "7 ERROR: values 1,0,: item 3 is empty: allowed 3 " + V15),
    ("0 7 0 1.2.3.4 502 5 1 15 1 3 ,1,0", "7 ERROR: values ,1,0: item 1 is empty: allowed 3 " + V15),
    ("0 7 0 1.2.3.4 502 5 1 15 1 2 1,true", "7 ERROR: values 1,true: item 2 is true: allowed 0..1"),
    ("0 7 0 1.2.3.4 502 5 1 16 1 2 1, 2", "7 ERROR: values 1,: item 2 is empty: allowed 2 " + V16),
    ("0 7 0 1.2.3.4 502 5 1 16 1 2 1;2", "7 ERROR: values 1;2: item 1 is 1;2: allowed 0..65535"),
    ("0 7 0 1.2.3.4 502 5 1 16 1 2 1,65536", "7 ERROR: values 1,65536: item 2 is 65536: allowed 0..65535"),
    ("0 7 0 1.2.3.4 502 5 1 16 1 2 1,99999999999999999999",
     "7 ERROR: values 1,99999999999999999999: item 2 is 99999999999999999999: allowed 0..65535"),
    ("0 7 0 1.2.3.4 502 5 1 16 1 2 -1,2", "7 ERROR: values -1,2: item 1 is -1: allowed 0..65535"),
    ("0 7 0 1.2.3.4 502 5 1 16 1 2 1,2 3", "7 ERROR: extra field 3: nothing allowed after values"),
    ("1 7", "7 ERROR: missing serial device id: allowed a serial device id"),
    ("1 7 rs485", "7 ERROR: missing timeout: allowed 1..999"),
    ("1 7 rs485 0 1 3 1 1", "7 ERROR: timeout 0: allowed 1..999"),
    ("1 7 rs485 5 1 3 1 1 1", "7 ERROR: extra field 1: nothing allowed after count"),
    ("2 7", "7 ERROR: missing connection index: allowed 0..7"),
    ("2 7 0", "7 ERROR: missing action: allowed 0 (open), 1 (close), 2 (status)"),
    ("2 7 0 1 0 1.2.3.4", "7 ERROR: extra field 0: nothing allowed after action"),
    ("2 7 0 2 1", "7 ERROR: extra field 1: nothing allowed after action"),
    ("2 7 0 0 0", "7 ERROR: missing IP: allowed an IPv4 address such as 192.168.1.1"),
    ("2 7 0 0 3", "7 ERROR: IP type 3: allowed 0 (IPv4), 1 (IPv6), 2 (hostname)"),
    ("2 7 0 0 0 1.2.3.4 502", "7 ERROR: missing timeout: allowed 1..999"),
    ("2 7 0 0 0 1.2.3.4 502 5 1", "7 ERROR: extra field 1: nothing allowed after timeout"),
    ("2 7 0 0 2 bad_host 502 5", "7 ERROR: IP bad_host: allowed a hostname of letters, digits, hyphens and dots"),
])
def test_malformed_request_reply(line, reply):
    assert err(line) == reply


def test_serial_device_ids_are_checked_when_configured():
    assert err("1 7 rs232 5 1 3 1 1", serial_ids=("rs485",)) == "7 ERROR: serial device id rs232: allowed one of rs485"
    assert err("1 7 rs232 5 1 3 1 1", serial_ids=("rs485", "bus2")) == (
        "7 ERROR: serial device id rs232: allowed one of rs485, bus2")
    assert err("1 7 rs485 5 1 3 1 1", serial_ids=()) == (
        "7 ERROR: serial device id rs485: allowed none (no serial device is configured)")
    assert err(b"1 7 rs\xff485 5 1 3 1 1") == "7 ERROR: serial device id rs?485: allowed a serial device id"


def test_bytes_that_are_not_text_never_break_parsing():
    assert err(b"\xff\xfe 7") == "7 ERROR: request type ??: allowed 0 (Modbus TCP), 1 (serial), 2 (connection)"
    assert err(b"0 \xff1") == "ERROR: cookie ?1: allowed 0..18446744073709551615"


# --- replies from response PDUs -----------------------------------------------------------------

@pytest.mark.parametrize("line, response, reply", [
    (tcp(3, 1, 2), "03 04 0000 15D6", "7 OK 0 5590"),
    (tcp(3, 1, 3), "03 06 0001 FFFF 8000", "7 OK 1 65535 32768"),
    (tcp(4, 9, 1), "04 02 FFFF", "7 OK 65535"),
    (tcp(1, 1, 10), "01 02 CD 01", "7 OK 1 0 1 1 0 0 1 1 1 0"),
    (tcp(1, 1, 8), "01 01 80", "7 OK 0 0 0 0 0 0 0 1"),
    (tcp(2, 1, 1), "02 01 00", "7 OK 0"),
    (tcp(2, 1, 3), "02 01 06", "7 OK 0 1 1"),
    (tcp(5, 4, 1), "05 0003 FF00", "7 OK"),
    (tcp(5, 4, 0), "05 0003 0000", "7 OK"),
    (tcp(6, 206, 1), "06 00CD 0001", "7 OK"),
    (tcp(15, 1, "10 1,0,1,1,0,0,0,0,1,1"), "0F 0000 000A", "7 OK"),
    (tcp(16, 1, "3 1,2,3"), "10 0000 0003", "7 OK"),
    (tcp(3, 1, 1, cookie=MAX_COOKIE), "03 02 0102", MAX_COOKIE + " OK 258"),
])
def test_reply_to_a_response(line, response, reply):
    assert answer(textproto.parse(line), response) == reply


def test_reply_to_2000_coils_has_exactly_2000_values():
    req = textproto.parse(tcp(1, 1, 2000))
    pdu = bytes([1, 250]) + bytes([0x55] * 250)
    assert textproto.format_response(req, pdu, len(pdu)) == "7 OK" + " 1 0" * 1000


def test_reply_reads_the_pdu_at_an_offset():
    req = textproto.parse(tcp(3, 1, 1))
    buf = hx("AABBCCDDEEFF00 03 02 1234")
    assert textproto.format_response(req, buf, 4, 7) == "7 OK 4660"


@pytest.mark.parametrize("code, text", [
    (1, "Modbus exception 1 (illegal function)"),
    (2, "Modbus exception 2 (illegal data address)"),
    (3, "Modbus exception 3 (illegal data value)"),
    (4, "Modbus exception 4 (server device failure)"),
    (5, "Modbus exception 5 (acknowledge)"),
    (6, "Modbus exception 6 (server device busy)"),
    (8, "Modbus exception 8 (memory parity error)"),
    (10, "Modbus exception 10 (gateway path unavailable)"),
    (11, "Modbus exception 11 (gateway target device failed to respond)"),
    (12, "Modbus exception 12"),
])
def test_exception_replies_name_the_code(code, text):
    for fc, rest in ((3, "1"), (16, "1 5"), (1, "1")):
        req = textproto.parse(tcp(fc, 1, rest))
        assert textproto.format_response(req, bytes([fc | 0x80, code]), 2) == "7 ERROR: " + text


@pytest.mark.parametrize("line, response, reason", [
    (tcp(3, 1, 1), "", "malformed response: 0 bytes"),
    (tcp(3, 1, 1), "03", "malformed response: 1 bytes"),
    (tcp(3, 1, 1), "04 02 0000", "malformed response: function 4 to function 3"),
    (tcp(3, 1, 1), "84 02", "malformed response: function 132 to function 3"),
    (tcp(3, 1, 2), "03 04 0000", "malformed response: byte count 4 with 2 data bytes"),
    (tcp(3, 1, 2), "03 02 0000", "malformed response: 2 data bytes for 2 registers"),
    (tcp(4, 1, 1), "04 04 0000 0000", "malformed response: 4 data bytes for 1 registers"),
    (tcp(1, 1, 10), "01 01 FF", "malformed response: 1 data bytes for 10 coils"),
    (tcp(2, 1, 8), "02 02 FF 00", "malformed response: 2 data bytes for 8 inputs"),
    (tcp(6, 206, 1), "06 00CD 0002", "malformed response: the echo does not match the request"),
    (tcp(6, 206, 1), "06 00CE 0001", "malformed response: the echo does not match the request"),
    (tcp(5, 1, 1), "05 0000 0000", "malformed response: the echo does not match the request"),
    (tcp(16, 1, "2 1,2"), "10 0000 0003", "malformed response: the echo does not match the request"),
    (tcp(6, 206, 1), "06 00CD", "malformed response: 3 bytes, expected 5"),
    (tcp(15, 1, "1 1"), "0F 0000 0001 00", "malformed response: 6 bytes, expected 5"),
])
def test_malformed_responses_are_named(line, response, reason):
    assert answer(textproto.parse(line), response) == "7 ERROR: " + reason


# --- transport errors and the other reply texts -------------------------------------------------

def test_transport_error_texts():
    req = textproto.parse("0 7 0 192.168.1.9 1502 5 1 3 1 1")
    assert refusals.timeout(req) == "7 ERROR: timeout: no response within 5 s"
    assert refusals.refused(req) == "7 ERROR: connection refused by 192.168.1.9:1502"
    assert refusals.unreachable(req, "host unreachable") == (
        "7 ERROR: cannot connect to 192.168.1.9:1502: host unreachable")
    req6 = textproto.parse("0 8 1 %s 502 2 1 3 1 1" % IPV6)
    assert refusals.refused(req6) == "8 ERROR: connection refused by [%s]:502" % IPV6
    serial = textproto.parse("1 9 rs485 3 1 3 1 1")
    assert refusals.timeout(serial) == "9 ERROR: timeout: no response within 3 s"
    assert refusals.no_serial_device(serial) == "9 ERROR: serial device id rs485: no such serial device available"


def test_queue_full_reply_keeps_the_cookie_when_there_is_one():
    assert turnaway.queue_full(b"0 123 0 1.2.3.4 502 5 1 3 1 1", 4) == (
        "123 ERROR: queue full: 4 requests waiting, try again later")
    assert turnaway.queue_full("0 x", 4) == "ERROR: queue full: 4 requests waiting, try again later"
    assert turnaway.queue_full(b"", 2) == "ERROR: queue full: 2 requests waiting, try again later"


def test_too_long_reply_echoes_a_whole_cookie_only():
    why = "request too long: 65536 bytes: allowed at most 1536 (mqtt.max_message)"
    assert turnaway.too_long(b"0 123 0 1.2.3.", 65536, 1536) == "123 ERROR: " + why
    assert turnaway.too_long(b" 0\t123\n", 65536, 1536) == "123 ERROR: " + why  # whitespace ends it
    assert turnaway.too_long(b"0 %s 9" % MAX_COOKIE.encode(), 65536, 1536) == MAX_COOKIE + " ERROR: " + why
    # Cut inside the cookie ("0 12" of "0 123..."): echoing "12" would answer someone else.
    assert turnaway.too_long(b"0 12", 65536, 1536) == "ERROR: " + why
    assert turnaway.too_long(b"0 1x3 0", 65536, 1536) == "ERROR: " + why
    assert turnaway.too_long(b"0 18446744073709551616 0", 65536, 1536) == "ERROR: " + why
    assert turnaway.too_long(b"", 2000, 1536) == (
        "ERROR: request too long: 2000 bytes: allowed at most 1536 (mqtt.max_message)")


def test_default_max_message_fits_what_docs_mqtt_md_says():
    """mqtt.max_message's default takes every FC16 request and FC15 up to the engine's 576
    coils, at their longest (20-digit cookie, 253-character hostname); 1968 coils need more."""
    from mbnode.mqtt.config import SCHEMA

    limit = SCHEMA["max_message"][0]
    host = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    head = "0 %s 2 %s 65535 999 255 " % (MAX_COOKIE, host)

    def longest(fc, count, value):
        line = head + "%d %d %d %s" % (fc, 65537 - count, count, ",".join([value] * count))
        textproto.parse(line)  # valid
        return len(line)

    assert longest(16, 123, "65535") == 1043 <= limit
    assert longest(15, 576, "1") == 1457 <= limit
    assert longest(15, 1968, "1") == 4242 > limit


def test_many_fields_never_become_many_objects():
    """parse() splits off at most 11 fields (the most a request has): a payload of thousands
    of words is the same error as one with a single extra word."""
    line = "0 7 0 1.2.3.4 502 5 1 16 1 2 1,2"
    assert err(line + " 3" * 5000) == err(line + " 3") == "7 ERROR: extra field 3: nothing allowed after values"
    assert err("2 7 0 1" + " x" * 5000) == "7 ERROR: extra field x: nothing allowed after action"
    assert err("0 7 0 1.2.3.4 502 5 1 3 1 2" + " abcdefghijklmnopqrstuvwxyz" * 100) == (
        "7 ERROR: extra field abcdefghijklmnopqrstuvwx...: nothing allowed after count")


def test_error_and_cookie_helpers():
    req = textproto.parse(tcp(3, 1, 1, cookie="44"))
    assert textproto.error(req, "serial port busy") == "44 ERROR: serial port busy"
    assert textproto.error("45", "x") == "45 ERROR: x"
    assert textproto.error(None, "x") == "ERROR: x"
    assert textproto.cookie_of(b"0 %s rest of it" % MAX_COOKIE.encode()) == MAX_COOKIE
    assert textproto.cookie_of("2 18446744073709551616 0 1") is None
    assert textproto.cookie_of("0") is None
    # Only the first textproto.HEAD bytes are looked at; a cookie cut there is no cookie.
    assert textproto.cookie_of(b"0 12 " + b"x" * 100000) == "12"
    assert textproto.cookie_of(b" " * (textproto.HEAD - 3) + b"0 123 4") is None
    assert textproto.cookie_of(b" " * (textproto.HEAD - 6) + b"0 12 4") == "12"
    assert textproto.exception_text(2) == "Modbus exception 2 (illegal data address)"
