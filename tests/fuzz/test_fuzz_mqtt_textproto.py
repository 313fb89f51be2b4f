"""The MQTT gateway's text protocol (mbnode.mqtt.textproto) under mutated requests and responses.

Invariants:
- parse() returns a Request or raises RequestError, nothing else; the error's reply is one line,
  short (fields are quoted up to a bound), "<COOKIE> ERROR: ..." when the cookie is valid and
  "ERROR: ..." when it is not;
- a parsed Modbus request builds a PDU of at most 252 bytes that the PDU engine can take, and the
  engine's answer formats as "<COOKIE> OK ..." or "<COOKIE> ERROR: Modbus exception N (...)";
- format_response() of any bytes, however malformed, is one line for that cookie, never an
  exception.
"""

from hypothesis import given
from hypothesis import strategies as st

import fuzzing
import pdu_cases
from mbnode.mqtt import textproto
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine

PROPERTY = fuzzing.per_target(2)  # this target's properties share `make fuzz`'s inputs

MAX_LINE = 300  # longest error line: fixed words plus quoted fields cut at a bound

NUMBERS = st.one_of(st.integers(-3, 20), st.integers(0, 70000), st.sampled_from([123, 124, 125, 126, 1968, 2000, 65535,
                                                                                 65536, 65537, 2 ** 64 - 1, 2 ** 64]))
WORDS = st.one_of(NUMBERS.map(str), st.sampled_from(["127.0.0.1", "::1", "0:0:0:0:0:0:0:1", "host.example", "rtu0",
                                                     "0,1,1,0", "1,2,3", "", "x" * 40, "1e3", "0x10", "-0",
                                                     "\u00e9", "18446744073709551615"]),
                  st.text(min_size=1, max_size=12).filter(lambda t: not any(c.isspace() for c in t)))


@st.composite
def requests(draw):
    kind = draw(st.sampled_from(["0", "1", "2", "3", "x"]))
    fields = [kind] + draw(st.lists(WORDS, min_size=0, max_size=12))
    sep = draw(st.sampled_from([" ", "  ", "\t", " \n"]))
    text = sep.join(fields)
    if draw(st.booleans()):
        return text.encode()
    return draw(st.binary(max_size=80))


def engine():
    return Engine(DataModel(), DeviceIdentification(pdu_cases.IDENTITY, 1))


def cookie_of(payload):
    tokens = payload.split()
    return tokens[1].decode() if len(tokens) > 1 and tokens[1].isdigit() and int(tokens[1]) < 2 ** 64 else None


def one_line(text, cookie):
    assert "\n" not in text and "\r" not in text and len(text) <= MAX_LINE, repr(text)
    if cookie is not None:
        assert text.startswith(cookie + " "), (cookie, text)


@PROPERTY
@given(requests())
def test_parse_answers_every_payload_with_a_request_or_one_line(payload):
    try:
        req = textproto.parse(payload, serial_ids=["rtu0"])
    except textproto.RequestError as e:
        line = e.args[0]
        cookie = cookie_of(payload)
        one_line(line, cookie)
        assert (line.startswith(cookie + " ERROR: ") if cookie is not None else line.startswith("ERROR: ")), line
        return
    assert req.kind in (textproto.TCP, textproto.SERIAL, textproto.CONN)
    if req.kind == textproto.CONN:
        return
    buf = bytearray(260)
    n = textproto.build_pdu(req, buf)
    assert 0 <= n <= 252
    if n == 0:
        assert textproto.format_response(req, None, 0) == req.cookie + " OK"
        return
    resp = bytearray(260)
    r = engine().handle(buf, 0, n, resp, 0)
    line = textproto.format_response(req, resp, r)
    assert "\n" not in line, repr(line)
    if " ERROR: " in line:
        one_line(line, req.cookie)
        assert line.startswith(req.cookie + " ERROR: Modbus exception "), line
    else:
        assert line.startswith(req.cookie + " OK"), line


@PROPERTY
@given(cookie=st.integers(0, 2 ** 64 - 1), fc=st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16]),
       count=st.integers(1, 125), pdu=st.binary(max_size=260))
def test_any_response_bytes_format_as_one_line(cookie, fc, count, pdu):
    count = min(count, 123) if fc == 16 else count
    values = ",".join(["1"] * count) if fc in (15, 16) else None
    text = "0 %d 0 127.0.0.1 502 5 1 %d 1 %s" % (cookie, fc, 1 if fc in (5, 6) else count)
    if values:
        text += " " + values
    req = textproto.parse(text)
    line = textproto.format_response(req, pdu, len(pdu))
    assert "\n" not in line and line.startswith(str(cookie) + " "), line
    if " ERROR: " in line:
        one_line(line, str(cookie))
