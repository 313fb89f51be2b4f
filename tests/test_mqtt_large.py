"""Messages longer than mqtt.max_message (docs/mqtt.md, "Message size"): mosquitto, paho-mqtt
and the firmware as a board runs it (mbnode and umqtt.simple as .mpy, 32-bit unix port) at the
smallest heap the bridge is specified for, with the bench's eight points of mixed types.

A 64 KiB request is read and dropped in pieces, never held: it is answered
"<cookie> ERROR: request too long: ..." (without a cookie when its first bytes do not hold a
whole one), the broker connection stays (no second "online", no reconnect in the log) and
every request sent between such messages is answered. Requests at the limit are executed,
one byte more is refused. Every reply on the response topic is counted: each cookie exactly
once, nothing else.
"""

import json

import pytest

from conftest import ROOT
from mbnode.mqtt import turnaway
from mqtttest import (  # noqa: F401 - broker, needs_bridge_tools: fixtures
    broker,
    needs_bridge_tools,
    BoardSim,
    Topics,
    board_build,
    collect_replies,
    start_device,
    unique_id,
)

# docs/mqtt.md, "RAM": the smallest heap the bridge is specified for (32-bit, .mpy), with
# messages up to the default mqtt.max_message in flight.
HEAP = "124K"
LIMIT = 1536  # mqtt.max_message's default
BIG = 64 * 1024
# bench/mqtt.py's eight points: the configuration the heap figure is measured with.
POINTS = json.loads((ROOT / "bench" / "points8.json").read_text())
TOO_LONG = "request too long: %d bytes: allowed at most %d (mqtt.max_message)"


@pytest.fixture(scope="module")
def build_dirs(tmp_path_factory):
    return board_build(tmp_path_factory.mktemp("board"))


@pytest.fixture(params=[1, 0], ids=["qos1", "qos0"])
def dev(request, tmp_path, broker, build_dirs):
    """A device at HEAP (function scope: each test reads its whole log at the end)."""
    topics = Topics(prefix=unique_id("big"))
    d = start_device(tmp_path, broker, topics, qos=request.param, points=POINTS,
                     make_sim=lambda cfg: BoardSim(build_dirs, tmp_path, cfg, HEAP), client_qos=request.param)
    yield d
    d.stop()


def local(dev, cookie, rest="3 97 2"):
    return "0 %s 0 127.0.0.1 %d 5 1 %s" % (cookie, dev.sim.port, rest)


def padded(text, size):
    """text with trailing spaces up to size bytes (whitespace ends a request; docs/mqtt.md)."""
    assert len(text) <= size
    return text + " " * (size - len(text))


def finish(dev):
    """Stop the device; its log (stdout and stderr) must show one connection and no
    MemoryError. Returns the log."""
    dev.sim.stop()
    log = dev.sim.proc.stdout.read() + dev.sim.proc.stderr.read()
    assert log.count("mqtt: connected") == 1 and "reconnecting" not in log, log
    assert "MemoryError" not in log and "error in event handler" not in log, log
    return log


def test_64k_requests_are_refused_and_the_connection_stays(dev):
    dev.io("set ao 0x60 11 22")
    sent = []
    # 24 rounds: more QoS 1 messages than mosquitto keeps unacknowledged towards a client (20),
    # so each refused one must have been acknowledged for the later ones to arrive.
    for i in range(24):
        dev.client.send(local(dev, 1000 + i))
        big = local(dev, 2000 + i).encode()
        dev.client.send(big + b"9" * (BIG - len(big)))
        sent += [str(1000 + i), str(2000 + i)]
    got = collect_replies(dev, sent, timeout=30)
    for i in range(24):
        assert got[str(1000 + i)] == ["%d OK 11 22" % (1000 + i)]
        assert got[str(2000 + i)] == ["%d ERROR: %s" % (2000 + i, TOO_LONG % (BIG, LIMIT))]
    assert set(got) == set(sent)
    assert not dev.client.pending(dev.topics.status), "the device connected again"
    assert dev.request(local(dev, 3000)) == "3000 OK 11 22"
    finish(dev)


def test_requests_around_the_limit(dev):
    dev.io("set ao 0x60 7 8")
    values = ",".join(["%05d" % (40000 + i) for i in range(100)])  # FC16 of 100 registers, padded
    write = local(dev, 300, "16 101 100 " + values)
    cases = [  # (cookie, payload, expected reply)
        ("301", padded(local(dev, 301), LIMIT - 1), "301 OK 7 8"),
        ("302", padded(local(dev, 302), LIMIT), "302 OK 7 8"),
        ("303", padded(local(dev, 303), LIMIT + 1), "303 ERROR: " + TOO_LONG % (LIMIT + 1, LIMIT)),
        ("300", padded(write, LIMIT), "300 OK"),
        ("304", padded(local(dev, 304), 2 * LIMIT), "304 ERROR: " + TOO_LONG % (2 * LIMIT, LIMIT)),
        ("305", local(dev, 305), "305 OK 7 8"),
        # No whole cookie in the bytes kept (leading whitespace): the reply has none.
        (None, " " * 100 + local(dev, 306) + " " * BIG, "ERROR: " + TOO_LONG % (BIG + 100 + len(local(dev, 306)),
                                                                                  LIMIT)),
        ("307", local(dev, 307), "307 OK 7 8"),
    ]
    for cookie, payload, _ in cases:
        dev.client.send(payload)
    got = collect_replies(dev, [c for c, _, _ in cases])
    assert got == dict((c, [reply]) for c, _, reply in cases)
    assert dev.io("get ao 100 100") == [40000 + i for i in range(100)]
    assert not dev.client.pending(dev.topics.status), "the device connected again"
    finish(dev)


def test_set_too_long_and_topic_too_long(dev):
    """A /set payload over the limit is answered on /res; a message on a topic longer than any
    the device subscribes to (here a 300-character point name) is dropped with a log line."""
    res = dev.topic("ao64", "res")
    dev.client.publish(dev.topic("ao64", "set"), b"1" * (LIMIT + 1))
    m = dev.client.wait(res)
    assert m.json()["ok"] is False
    assert m.json()["error"] == "payload of %d bytes: allowed at most %d (mqtt.max_message)" % (LIMIT + 1, LIMIT)
    dev.client.publish(dev.topic("ao64", "set"), b'{"value": -5}')
    assert dev.client.wait(res).json()["ok"] is True
    long_name = "p" * 300
    dev.client.publish(dev.topic(long_name, "set"), b"1")
    dev.client.publish(dev.topic(long_name, "set"), b"1" * BIG)
    assert dev.request(local(dev, 400, "3 65 1")) == "400 OK 65531"
    dev.client.absent(dev.topic(long_name, "res"), duration=0.5)
    log = finish(dev)
    assert log.count("mqtt: dropped a message of 1 bytes on a topic this device does not answer") == 1, log
    assert log.count("mqtt: dropped a message of %d bytes on a topic this device does not answer" % BIG) == 1, log


def test_the_reply_text_is_the_gateway_module_s():
    # The texts above are written out by hand; the firmware's come from mbnode.mqtt.turnaway.
    assert turnaway.too_long(b"0 5 ", BIG, LIMIT) == "5 ERROR: " + TOO_LONG % (BIG, LIMIT)
