"""The MQTT gateway of the running simulator (seeds/000's router text protocol) end to end:
mosquitto, the real firmware on the unix port, and real Modbus partners (the simulator's own
engine, a pymodbus TCP server, a TCP server that never answers, a refused port, a pymodbus RTU
field device on a socat pty pair).

Expected reply lines are the texts of mbnode.mqtt.textproto computed in CPython (the same
module the firmware runs), and, for a few, written out by hand so that a wrong one is caught too.
Module-wide: one broker, one slave-mode simulator (queue 2, parallel 2, QoS 1, default topics) and one
RTU-master simulator (prefix "master"); every test uses its own cookies and addresses.
"""

import socket
import time

import pytest

from mbnode.mqtt import refusals, textproto, turnaway
from mbnode.mqtt.textproto import RequestError
from mbtest import ok, pymodbus, pymodbus_client, unit
from mqtttest import (  # noqa: F401 - broker, needs_bridge_tools: fixtures
    broker,
    needs_bridge_tools,
    HOST,
    Client,
    PtyPair,
    PymodbusServer,
    RtuDevice,
    SilentServer,
    Topics,
    free_port,
    start_device,
)

MAX_COOKIE = "18446744073709551615"
SERIAL_IDS = ["rs485"]
QUEUE = 2
PARALLEL = 2


@pytest.fixture(scope="module")
def remote(needs_bridge_tools):
    """The second Modbus TCP server: pymodbus, unit 5 (values in mqtttest.PymodbusServer)."""
    s = PymodbusServer(unit=5)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def silent():
    s = SilentServer()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, broker):
    """Slave-mode simulator (RTU on a pty, unit 1) with the bridge: default topics, QoS 1,
    queue 2."""
    d = start_device(tmp_path_factory.mktemp("gw"), broker, Topics(), sim_kw={"rtu": "pty"},
                     qos=1, queue=QUEUE, parallel=PARALLEL)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def master(tmp_path_factory, broker):
    """RTU-master simulator: the pymodbus RTU field device (unit 17) on the other end of a
    socat pty pair; topics under prefix "master"."""
    tmp = tmp_path_factory.mktemp("master")
    pair = PtyPair(tmp)
    dev = None
    d = None
    try:
        dev = RtuDevice(pair.b, unit=17, baud=19200, parity="N", stopbits=1)
        d = start_device(tmp, broker, Topics(prefix="master"),
                         sim_kw={"rtu": pair.a, "parity": "N", "stopbits": 1},
                         config={"rtu": {"mode": "master"}})
        yield d
    finally:
        if d is not None:
            d.stop()
        if dev is not None:
            dev.stop()
        pair.stop()


def parse_error(payload):
    with pytest.raises(RequestError) as e:
        textproto.parse(payload, SERIAL_IDS)
    return e.value.args[0]


def req(payload):
    return textproto.parse(payload, SERIAL_IDS)


# --- the device on the broker -------------------------------------------------------------------


def test_ready_line_names_the_broker(gw, broker):
    assert gw.sim.fields.get("mqtt") == "%s:%d" % (HOST, broker.port), gw.sim.ready


def test_status_online_is_retained(gw, broker):
    late = Client(broker, subscribe=[gw.topics.status])
    try:
        m = late.wait(gw.topics.status)
        assert (m.payload, m.retain) == (b"online", True)
    finally:
        late.close()


def test_replies_use_the_configured_qos(gw):
    gw.client.send(gw.local("3 1 1", "77"))
    m = gw.client.wait(gw.topics.response, lambda m: m.text.startswith("77 "))
    assert m.qos == 1, "mqtt.qos 1: the reply came with QoS %d" % m.qos


# --- the seed's examples, against the simulator's own slave ---------------------------------------


def test_seed_example_uptime(gw):
    gw.io("set ao 1 5590 1234")
    assert gw.request("0 65432 0 127.0.0.1 %d 5 1 3 2 2" % gw.sim.port) == "65432 OK 5590 1234"


def test_seed_example_write(gw):
    # Register number 206 = address 205 (0x00CD): an extension analog output, present.
    gw.io("set ao 205 0")
    assert gw.request("0 65432 0 127.0.0.1 %d 5 1 6 206 1" % gw.sim.port) == "65432 OK"
    assert gw.io("get ao 205") == [1]


# --- every function to the local engine ------------------------------------------------------------


def test_local_fc1_read_coils(gw):
    bits = [1, 0, 1, 1, 0, 0, 0, 0, 1]
    gw.io("set do 0x20 " + " ".join(map(str, bits)))
    assert gw.request(gw.local("1 33 9", "101")) == "101 OK " + " ".join(map(str, bits))


def test_local_fc2_read_discrete_inputs(gw):
    bits = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0]
    gw.io("set di 0x20 " + " ".join(map(str, bits)))
    assert gw.request(gw.local("2 33 11", "102")) == "102 OK " + " ".join(map(str, bits))


def test_local_fc3_read_holding(gw):
    gw.io("set ao 0x60 100 200 65535")
    assert gw.request(gw.local("3 97 3", "103")) == "103 OK 100 200 65535"


def test_local_fc4_read_input_and_memory(gw):
    gw.io("set ai 0x60 1 2 3")
    assert gw.request(gw.local("4 97 3", "104")) == "104 OK 1 2 3"
    gw.io("set mem 1 0x00050006")
    assert gw.request(gw.local("4 4097 2", "1041")) == "1041 OK 6 5"  # low half first


def test_local_fc5_write_coil(gw):
    gw.io("set do 34 0")
    assert gw.request(gw.local("5 35 1", "105")) == "105 OK"
    assert gw.io("get do 34") == [1]
    assert gw.request(gw.local("5 35 0", "1051")) == "1051 OK"
    assert gw.io("get do 34") == [0]


def test_local_fc6_write_register(gw):
    assert gw.request(gw.local("6 100 54321", "106")) == "106 OK"
    assert gw.io("get ao 99") == [54321]


def test_local_fc15_write_coils(gw):
    bits = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1]
    gw.io("set do 40 " + " ".join(["0"] * 10))
    assert gw.request(gw.local("15 41 10 " + ",".join(map(str, bits)), "115")) == "115 OK"
    assert gw.io("get do 40 10") == bits


def test_local_fc16_write_registers(gw):
    assert gw.request(gw.local("16 101 4 1,2,65535,0", "116")) == "116 OK"
    assert gw.io("get ao 100 4") == [1, 2, 65535, 0]


def test_local_count_zero_is_ok(gw):
    assert gw.request(gw.local("3 1 0", "120")) == "120 OK"


def test_local_by_hostname(gw):
    gw.io("set ao 0x70 4711")
    assert gw.request("0 121 2 localhost %d 5 1 3 113 1" % gw.sim.port) == "121 OK 4711"


def test_local_exceptions(gw):
    # 0x0140 (register 321) is outside the map; onboard AO 0x0000 is 10-bit.
    assert gw.request(gw.local("3 321 1", "122")) == "122 ERROR: Modbus exception 2 (illegal data address)"
    assert gw.request(gw.local("6 1 1024", "123")) == "123 ERROR: Modbus exception 3 (illegal data value)"
    assert gw.request(gw.local("16 320 2 1,2", "124")) == "124 ERROR: Modbus exception 2 (illegal data address)"


def test_local_other_server_id(gw):
    assert gw.request(gw.local("3 1 1", "125", server=7)) == (
        "125 ERROR: server id 7: no such server at 127.0.0.1:%d (this device answers server id 1)" % gw.sim.port)


# --- cookies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cookie", ["0", "1", "65432", MAX_COOKIE, "007", "4294967296", "9223372036854775808"])
def test_cookie_echoed(gw, cookie):
    gw.io("set ao 0x71 9")
    assert gw.request(gw.local("3 114 1", cookie)) == cookie + " OK 9"


def test_cookie_echoed_on_errors(gw):
    assert gw.request("0 %s 0 127.0.0.1 %d 5 1 7 1 1" % (MAX_COOKIE, gw.sim.port)).startswith(MAX_COOKIE + " ERROR: ")
    assert gw.request("2 0 9 2").startswith("0 ERROR: ")


# --- malformed requests --------------------------------------------------------------------------

MALFORMED = [
    "",
    "   ",
    "3 1 0 127.0.0.1 502 5 1 3 1 1",
    "x 1 0 127.0.0.1 502 5 1 3 1 1",
    "0",
    "0 abc 0 127.0.0.1 502 5 1 3 1 1",
    "0 18446744073709551616 0 127.0.0.1 502 5 1 3 1 1",
    "0 -1 0 127.0.0.1 502 5 1 3 1 1",
    "0 1e3 0 127.0.0.1 502 5 1 3 1 1",
    "0 5",
    "0 5 3 127.0.0.1 502 5 1 3 1 1",
    "0 5 0 256.1.1.1 502 5 1 3 1 1",
    "0 5 0 1.2.3 502 5 1 3 1 1",
    "0 5 1 ::1 502 5 1 3 1 1",
    "0 5 2 -bad-.example 502 5 1 3 1 1",
    "0 5 0 127.0.0.1 0 5 1 3 1 1",
    "0 5 0 127.0.0.1 65536 5 1 3 1 1",
    "0 5 0 127.0.0.1 502 0 1 3 1 1",
    "0 5 0 127.0.0.1 502 1000 1 3 1 1",
    "0 5 0 127.0.0.1 502 5 0 3 1 1",
    "0 5 0 127.0.0.1 502 5 256 3 1 1",
    "0 5 0 127.0.0.1 502 5 1 7 1 1",
    "0 5 0 127.0.0.1 502 5 1 0 1 1",
    "0 5 0 127.0.0.1 502 5 1 17 1 1",
    "0 5 0 127.0.0.1 502 5 1 3 0 1",
    "0 5 0 127.0.0.1 502 5 1 3 65537 1",
    "0 5 0 127.0.0.1 502 5 1 3 1 126",
    "0 5 0 127.0.0.1 502 5 1 3 65536 2",
    "0 5 0 127.0.0.1 502 5 1 1 1 0",
    "0 5 0 127.0.0.1 502 5 1 2 1 2001",
    "0 5 0 127.0.0.1 502 5 1 3 1",
    "0 5 0 127.0.0.1 502 5 1 3 1 1 9",
    "0 5 0 127.0.0.1 502 5 1 5 1 2",
    "0 5 0 127.0.0.1 502 5 1 5 1 0xFF00",
    "0 5 0 127.0.0.1 502 5 1 6 1 65536",
    "0 5 0 127.0.0.1 502 5 1 6 1",
    "0 5 0 127.0.0.1 502 5 1 15 1 3 1,0",
    "0 5 0 127.0.0.1 502 5 1 15 1 3 1,2,0",
    "0 5 0 127.0.0.1 502 5 1 15 1 1969 1",
    "0 5 0 127.0.0.1 502 5 1 16 1 3 1,,2",
    "0 5 0 127.0.0.1 502 5 1 16 1 2 1,65536",
    "0 5 0 127.0.0.1 502 5 1 16 1 2",
    "0 5 0 127.0.0.1 502 5 1 16 1 2 1, 2",
    "0 5 0 127.0.0.1 502 5 1 16 1 124 1",
    "1 5 rs232 5 1 3 1 1",
    "1 5 rs485 0 1 3 1 1",
    "1 5 rs485 5 1 3 1 1 extra",
    "2 5 8 2",
    "2 5 0 3",
    "2 5 0 1 extra",
    "2 5 0 0 0 127.0.0.1 502",
    "2 5 0 0 0 127.0.0.1 502 5 6",
    "2 5",
    b"0 5 0 127.0.0.1 502 5 1 3 \xff\xfe 1",
    b"0 \xff 0 127.0.0.1 502 5 1 3 1 1",
]


@pytest.mark.parametrize("payload", MALFORMED, ids=[repr(p)[:40] for p in MALFORMED])
def test_malformed_request(gw, payload):
    expected = parse_error(payload)
    gw.client.clear(gw.topics.response)
    assert gw.request(payload) == expected


def test_malformed_wording_by_hand(gw):
    """The texts of a few parse errors, written out from textproto.py's rules: the cookie (when
    valid), "ERROR:", the field's name, what came and what is allowed."""
    cases = [
        ("0 5 0 127.0.0.1 502 5 1 7 1 1", "5 ERROR: function 7: allowed 1, 2, 3, 4, 5, 6, 15, 16"),
        ("2 6 8 2", "6 ERROR: connection index 8: allowed 0..7"),
        ("0 abc 0 127.0.0.1 502 5 1 3 1 1", "ERROR: cookie abc: allowed 0..18446744073709551615"),
        ("1 7 rs232 5 1 3 1 1", "7 ERROR: serial device id rs232: allowed one of rs485"),
        ("0 8 0 127.0.0.1 502 5 1 3 1 126", "8 ERROR: count 126: allowed 0..125"),
        ("0 9 0 127.0.0.1 502 5 1 16 1 3 1,2", "9 ERROR: values 1,2: 2 items for count 3: allowed 3 "
                                                 "comma-separated values 0..65535 without spaces"),
    ]
    for payload, expected in cases:
        gw.client.clear(gw.topics.response)
        got = gw.request(payload)
        assert got == expected
        for word in ("ERROR:", "allowed"):
            assert word in got


# --- format 0 to another Modbus TCP server -----------------------------------------------------------


def remote_req(remote, cookie, rest, timeout=5, host="0 127.0.0.1"):
    return "0 %s %s %d %d %d %s" % (cookie, host, remote.port, timeout, remote.unit, rest)


def test_remote_reads(gw, remote):
    assert gw.request(remote_req(remote, 201, "3 1 3")) == "201 OK 500 501 502"
    assert gw.request(remote_req(remote, 202, "4 2 2")) == "202 OK 701 702"
    coils = " ".join("1" if b else "0" for b in remote.COILS[:10])
    assert gw.request(remote_req(remote, 203, "1 1 10")) == "203 OK " + coils
    inputs = " ".join("1" if b else "0" for b in remote.DISCRETE[:12])
    assert gw.request(remote_req(remote, 204, "2 1 12")) == "204 OK " + inputs


def test_remote_writes(gw, remote):
    c = remote.client()
    try:
        assert gw.request(remote_req(remote, 211, "6 51 4242")) == "211 OK"
        assert ok(c.read_holding_registers(50, count=1, **unit(5))).registers == [4242]
        assert gw.request(remote_req(remote, 212, "16 61 3 7,65535,9")) == "212 OK"
        assert ok(c.read_holding_registers(60, count=3, **unit(5))).registers == [7, 65535, 9]
        assert gw.request(remote_req(remote, 213, "5 31 1")) == "213 OK"
        assert ok(c.read_coils(30, count=1, **unit(5))).bits[0] is True
        assert gw.request(remote_req(remote, 214, "15 21 5 0,1,1,0,1")) == "214 OK"
        assert ok(c.read_coils(20, count=5, **unit(5))).bits[:5] == [False, True, True, False, True]
        assert gw.request(remote_req(remote, 215, "3 61 3")) == "215 OK 7 65535 9"
    finally:
        c.close()


def test_remote_by_hostname(gw, remote):
    """IP type 2: the name is resolved. The server listens on 127.0.0.1 only; on a host whose
    "localhost" resolves to ::1 first, the refusal is the right answer."""
    payload = remote_req(remote, 216, "3 3 1", host="2 localhost")
    first = socket.getaddrinfo("localhost", remote.port)[0][0]
    expected = "216 OK 502" if first == socket.AF_INET else refusals.refused(req(payload))
    assert gw.request(payload) == expected


def test_remote_exception(gw, remote):
    # The pymodbus server has holding registers 0..99: register number 101 = address 100.
    assert gw.request(remote_req(remote, 221, "3 101 1")) == "221 ERROR: Modbus exception 2 (illegal data address)"
    assert gw.request(remote_req(remote, 222, "1 33 1")) == "222 ERROR: Modbus exception 2 (illegal data address)"
    # The remote still answers afterwards (the connection state was cleaned up).
    assert gw.request(remote_req(remote, 223, "3 1 1")) == "223 OK 500"


def test_remote_refused(gw):
    payload = "0 231 0 127.0.0.1 %d 3 1 3 1 1" % free_port()
    got = gw.request(payload)
    assert got == refusals.refused(req(payload))
    assert got.startswith("231 ERROR: ") and "refused" in got


def test_remote_timeout_while_tcp_keeps_serving(gw, silent):
    """A server that accepts and never answers: the reply is the timeout text after TIMEOUT
    seconds, and the simulator's Modbus TCP slave answers every poll meanwhile."""
    payload = "0 241 0 127.0.0.1 %d 1 1 3 1 1" % silent.port
    gw.io("set ao 0x72 31337")
    t0 = time.monotonic()
    gw.client.send(payload)
    polls = []
    with pymodbus_client(gw.sim, timeout=2.0) as c:
        deadline = t0 + 10
        while not [m for m in gw.client.pending(gw.topics.response) if m.text.startswith("241 ")]:
            assert time.monotonic() < deadline, "no reply to the gateway request in 10 s"
            p0 = time.monotonic()
            rr = c.read_holding_registers(0x72, count=1, **unit())
            polls.append(time.monotonic() - p0)
            assert not rr.isError() and rr.registers == [31337], rr
            time.sleep(0.1)
    got = gw.client.response("241", 1)
    elapsed = time.monotonic() - t0
    assert got == refusals.timeout(req(payload)) == "241 ERROR: timeout: no response within 1 s"
    assert 0.8 <= elapsed <= 5, elapsed
    assert len(polls) >= 4, polls
    assert max(polls) < 1.0, "a Modbus TCP poll waited %.2f s while the gateway waited" % max(polls)


# --- format 1 on a slave-mode serial port -------------------------------------------------------------


def test_serial_own_unit_is_local(gw):
    gw.io("set ao 0 7 8")
    assert gw.request("1 301 rs485 5 1 3 1 2") == "301 OK 7 8"
    assert gw.request("1 302 rs485 5 1 6 300 77") == "302 OK"
    assert gw.io("get ao 299") == [77]


def test_serial_other_unit_in_slave_mode(gw):
    assert gw.request("1 303 rs485 5 9 3 1 2") == (
        "303 ERROR: serial device id rs485: the serial port is a Modbus RTU slave here, "
        "only server id 1 (this device) is answered")


def test_serial_unknown_device_id(gw):
    payload = "1 304 ttyS9 5 1 3 1 2"
    assert gw.request(payload) == parse_error(payload) == "304 ERROR: serial device id ttyS9: allowed one of rs485"


# --- format 2: connection slots ---------------------------------------------------------------------


def test_slots(gw, remote):
    rp = remote.port
    assert gw.request("2 401 0 0 0 127.0.0.1 %d 5" % rp) == "401 OK"
    assert gw.request("2 402 0 2") == "402 OK 1"
    assert gw.request(remote_req(remote, 403, "3 1 2")) == "403 OK 500 501"
    assert gw.request("2 404 0 2") == "404 OK 1", "a format-0 request over an open slot leaves it open"
    assert gw.request("2 405 0 0 0 127.0.0.1 %d 5" % rp) == "405 OK", "reopening an open slot"
    assert gw.request("2 406 0 2") == "406 OK 1"
    assert gw.request("2 407 0 1") == "407 OK"
    assert gw.request("2 408 0 2") == "408 OK 0"
    assert gw.request("2 409 0 1") == "409 OK", "closing a closed slot"
    assert gw.request(remote_req(remote, 410, "3 2 1")) == "410 OK 501", "format 0 without a slot"
    assert gw.request("2 411 7 2") == "411 OK 0"


def test_slot_reopen_without_a_target(gw, remote):
    """seeds/000: OPEN "will open a closed connection, reopen an already open connection with the
    same parameters": "2 C N 0" alone uses the target of the slot's last OPEN."""
    payload = "2 441 5 0"
    assert gw.request(payload) == refusals.never_opened(req(payload)) == (
        "441 ERROR: connection index 5 was never opened: allowed 0 (open) with IP_TYPE IP PORT TIMEOUT")
    assert gw.request("2 442 5 2") == "442 OK 0"
    peer = SilentServer()
    try:
        assert gw.request("2 443 5 0 0 127.0.0.1 %d 5" % peer.port) == "443 OK"
        peer.wait_accepted(1)
        assert gw.request("2 444 5 0") == "444 OK", "reopening an open slot"
        peer.wait_accepted(2)  # closed and connected again
        assert gw.request("2 445 5 2") == "445 OK 1"
        assert gw.request("2 446 5 1") == "446 OK"
        assert gw.request("2 447 5 2") == "447 OK 0"
        assert gw.request("2 448 5 0") == "448 OK", "reopening a closed slot"
        peer.wait_accepted(3)
        assert gw.request("2 449 5 2") == "449 OK 1"
        # An OPEN with a target replaces the remembered one: now the pymodbus server.
        assert gw.request("2 450 5 0 0 127.0.0.1 %d 5" % remote.port) == "450 OK"
        assert gw.request("2 451 5 1") == "451 OK"
        assert gw.request("2 452 5 0") == "452 OK"
        assert gw.request(remote_req(remote, 453, "3 1 2")) == "453 OK 500 501", "over the reopened slot"
        assert gw.request("2 454 5 2") == "454 OK 1"
        assert peer.accepted == 3, "the reopen went to the last target, not the first"
    finally:
        gw.request("2 455 5 1")
        peer.stop()
    assert gw.request("2 456 3 2") == "456 OK 0", "other slots remember nothing"
    assert gw.request("2 457 3 0") == "457 ERROR: connection index 3 was never opened: allowed 0 (open) with " \
                                      "IP_TYPE IP PORT TIMEOUT"


def test_slot_reopen_retries_a_refused_open(gw):
    """The target is remembered whether or not the connection could be made."""
    port = free_port()
    first = "2 461 6 0 0 127.0.0.1 %d 3" % port
    assert gw.request(first) == refusals.refused(req(first)) == "461 ERROR: connection refused by 127.0.0.1:%d" % port
    assert gw.request("2 462 6 0") == "462 ERROR: connection refused by 127.0.0.1:%d" % port
    assert gw.request("2 463 6 2") == "463 OK 0"


def test_slot_open_refused(gw):
    payload = "2 421 1 0 0 127.0.0.1 %d 3" % free_port()
    assert gw.request(payload) == refusals.refused(req(payload))
    assert gw.request("2 422 1 2") == "422 OK 0"


def test_slot_index_8(gw):
    payload = "2 423 8 0 0 127.0.0.1 502 3"
    assert gw.request(payload) == parse_error(payload) == "423 ERROR: connection index 8: allowed 0..7"


def test_slot_closed_by_peer(gw):
    """A slot whose peer closes the connection becomes closed."""
    peer = SilentServer(close_after=0.3)
    try:
        assert gw.request("2 431 2 0 0 127.0.0.1 %d 5" % peer.port) == "431 OK"
        peer.wait_accepted(1)
        deadline = time.monotonic() + 5
        for i in range(30):
            got = gw.request("2 %d 2 2" % (432 + i))
            if got.endswith(" OK 0") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == "%d OK 0" % (432 + i), "slot 2 still open after its peer closed: %s" % got
    finally:
        gw.request("2 499 2 1")
        peer.stop()


# --- the queue and the parallel jobs (mqtt.queue 2, mqtt.parallel 2) --------------------------------


def _replies(gw, cookies, timeout):
    """The replies to `cookies` in the order they came: [(cookie, text, seconds since t0)]."""
    got = []
    for _ in range(len(cookies)):
        m = gw.client.wait(gw.topics.response, lambda m: m.text.split(" ", 1)[0] in cookies, timeout=timeout)
        got.append((m.text.split(" ", 1)[0], m.text, m.time))
    return got


def test_a_dead_server_delays_neither_other_servers_nor_the_device_itself(gw, silent, remote):
    """A request to a server that never answers (timeout 8 s) runs while a request to another
    server and a local one are answered: both replies come before its timeout's."""
    gw.io("set ao 0x73 606")
    gw.client.send("0 911 0 127.0.0.1 %d 8 1 3 1 1" % silent.port)
    gw.client.send("0 912 0 127.0.0.1 %d 8 5 4 1 2" % remote.port)
    gw.client.send(gw.local("3 116 1", "913"))
    got = _replies(gw, {"911", "912", "913"}, timeout=20)
    order = [c for c, _, _ in got]
    assert order.index("911") == 2, got
    texts = dict((c, t) for c, t, _ in got)
    assert texts["912"] == "912 OK 700 701"
    assert texts["913"] == "913 OK 606"
    assert texts["911"] == refusals.timeout(req("0 911 0 127.0.0.1 %d 8 1 3 1 1" % silent.port))


def test_requests_to_one_server_run_one_after_the_other(gw, silent):
    """Two requests to the same dead server (timeout 2 s): the second is sent only when the
    first has timed out, so its reply comes at least 4 s after both were sent."""
    slow = "0 %%d 0 127.0.0.1 %d 2 1 3 1 1" % silent.port
    t0 = time.monotonic()
    gw.client.send(slow % 921)
    gw.client.send(slow % 922)
    got = _replies(gw, {"921", "922"}, timeout=20)
    assert [c for c, _, _ in got] == ["921", "922"], got
    assert got[1][2] - t0 >= 4.0, got
    assert got[1][1] == refusals.timeout(req(slow % 922))


def test_queue_full_and_fifo(gw, silent):
    """mqtt.parallel 2 and mqtt.queue 2: two requests to the dead server run (one on the wire,
    one queued on its connection), two more wait in the bridge's queue, the fifth is answered
    "queue full" at once, and a local request still goes past them all; the four slow ones
    then time out in the order they came."""
    slow = "0 %%d 0 127.0.0.1 %d 2 1 3 1 1" % silent.port
    gw.io("set ao 0x73 607")
    payloads = [slow % 931, slow % 932, slow % 933, slow % 934, slow % 935, gw.local("3 116 1", "936")]
    t0 = time.monotonic()
    for p in payloads:
        gw.client.send(p)
    got = _replies(gw, {"931", "932", "933", "934", "935", "936"}, timeout=30)
    order = [c for c, _, _ in got]
    assert sorted(order[:2]) == ["935", "936"], got
    assert order[2:] == ["931", "932", "933", "934"], got
    texts = dict((c, t) for c, t, _ in got)
    assert texts["935"] == turnaway.queue_full(payloads[4], QUEUE) == \
        "935 ERROR: queue full: 2 requests waiting, try again later"
    assert texts["936"] == "936 OK 607"
    for c, p in zip(("931", "932", "933", "934"), payloads):
        assert texts[c] == refusals.timeout(req(p))
    assert got[-1][2] - t0 >= 8.0, "four 2-s timeouts one after the other: %r" % got


def test_gateway_idle_after_queue(gw, remote):
    """After the queue test every job is free again: remote and local requests are answered."""
    assert gw.request("0 907 0 127.0.0.1 %d 5 5 4 1 1" % remote.port, timeout=5) == "907 OK 700"
    assert gw.request(gw.local("3 116 1", "908"), timeout=5) == "908 OK 607"


# --- format 1 to an RTU field device (rtu.mode master) ---------------------------------------------------


def test_master_reads(master):
    assert master.request("1 501 rs485 5 17 3 101 2") == "501 OK 1100 1101"
    assert master.request("1 502 rs485 5 17 3 200 1") == "502 OK 1199"


def test_master_writes(master):
    assert master.request("1 511 rs485 5 17 6 111 4242") == "511 OK"
    assert master.request("1 512 rs485 5 17 3 111 1") == "512 OK 4242"
    assert master.request("1 513 rs485 5 17 16 121 3 7,8,65535") == "513 OK"
    assert master.request("1 514 rs485 5 17 3 121 3") == "514 OK 7 8 65535"


@pytest.mark.parametrize("rest", ["1 1 8", "2 1 8", "4 1 2", "5 1 1", "15 1 3 1,0,1", "3 1 1", "16 201 2 1,2"])
def test_master_exceptions(master, rest):
    """The field device has holding registers 100..199 only: anything else is exception 02,
    for every function."""
    got = master.request("1 521 rs485 5 17 " + rest)
    assert got == "521 ERROR: Modbus exception 2 (illegal data address)"


def test_master_timeout_while_tcp_keeps_serving(master):
    """Unit 18 is not on the line: timeout after 1 s; the simulator's TCP slave answers meanwhile."""
    payload = "1 531 rs485 1 18 3 101 1"
    master.io("set ao 0x74 99")
    t0 = time.monotonic()
    master.client.send(payload)
    with pymodbus_client(master.sim, timeout=2.0) as c:
        deadline = t0 + 10
        n = 0
        while not [m for m in master.client.pending(master.topics.response) if m.text.startswith("531 ")]:
            assert time.monotonic() < deadline
            assert ok(c.read_holding_registers(0x74, count=1, **unit())).registers == [99]
            n += 1
            time.sleep(0.1)
    got = master.client.response("531", 1)
    assert got == refusals.timeout(req(payload)) == "531 ERROR: timeout: no response within 1 s"
    assert 0.8 <= time.monotonic() - t0 <= 5
    assert n >= 3
    # The line works again after the timeout.
    assert master.request("1 532 rs485 5 17 3 102 1") == "532 OK 1101"


def test_master_local_format0_still_local(master):
    master.io("set ao 0x75 12")
    assert master.request("0 541 0 127.0.0.1 %d 5 1 3 118 1" % master.sim.port) == "541 OK 12"


def test_prefix_applies_to_the_response_topic(master, gw):
    """Two devices on one broker, each on its own topics: the reply of the device with prefix
    "master" comes on master/response only, never on the unprefixed response topic."""
    gw.client.clear(gw.topics.response)
    assert master.request("1 551 rs485 5 17 3 101 1") == "551 OK 1100"
    gw.client.absent(gw.topics.response, lambda m: m.text.startswith("551 "), duration=0.3)


def test_ipv6_target_in_full_form(gw):
    """IP_TYPE 1: a Modbus TCP server on ::1 (a socket answering one fixed FC03 response)."""
    import threading

    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.bind(("::1", 0))
    srv.listen(1)
    srv.settimeout(10)
    port = srv.getsockname()[1]
    got = []

    def serve():
        try:
            c, _ = srv.accept()
            with c:
                c.settimeout(10)
                request = c.recv(260)
                got.append(request)
                # Same transaction id, unit; FC03 with 2 registers 0x1234 0x5678.
                c.sendall(request[:2] + b"\x00\x00\x00\x07" + request[6:7] + b"\x03\x04\x12\x34\x56\x78")
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        full = "0000:0000:0000:0000:0000:0000:0000:0001"
        assert gw.client.request("0 61 1 %s %d 5 9 3 11 2" % (full, port)) == "61 OK 4660 22136"
        assert got and got[0][6:] == b"\x09\x03\x00\x0a\x00\x02"  # unit 9, FC03, address 10, 2 registers
    finally:
        t.join(10)
        srv.close()
