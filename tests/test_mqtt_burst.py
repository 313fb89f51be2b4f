"""Bursts of gateway requests (docs/mqtt.md, "Queue"): mosquitto, paho-mqtt and the simulator,
with the bridge at QoS 0 and at QoS 1 (the test client publishes at the same QoS).

100 requests published at once are each answered exactly once: all executed when the gateway
is free, and all executed at once while a slow request (to a server that never answers) is in
flight, since requests to the device itself never wait behind remote ones. A burst of remote
requests fills the mqtt.parallel jobs, then the mqtt.queue, and the rest are answered "queue
full" at once.
Every reply on the response topic is counted: one per cookie, nothing else. (Before the
bridge wrote its replies itself, umqtt's publish at QoS 1 read requests while it waited for
its PUBACK and their replies overflowed a 16-entry outbox: 17 of 40 and 76 of 100 requests
got no answer at all.)
"""

import pytest

from mbnode.mqtt import refusals, textproto, turnaway
from mqtttest import broker, needs_bridge_tools  # noqa: F401 - fixtures
from mqtttest import SilentServer, Topics, collect_replies, start_device

N = 100
QUEUE = 8  # mqtt.queue's default
PARALLEL = 4  # mqtt.parallel's default
SLOW_S = 3  # TIMEOUT of the request to the silent server


@pytest.fixture(scope="module")
def silent():
    s = SilentServer()
    yield s
    s.stop()


@pytest.fixture(scope="module", params=[0, 1], ids=["qos0", "qos1"])
def dev(request, tmp_path_factory, broker):
    q = request.param
    d = start_device(tmp_path_factory.mktemp("burst"), broker, Topics(prefix="burst%d" % q), qos=q, client_qos=q)
    yield d
    d.stop()


def read_request(dev, cookie):
    return "0 %d 0 127.0.0.1 %d 5 1 3 97 2" % (cookie, dev.sim.port)


def test_burst_of_100_each_answered_once(dev):
    dev.io("set ao 0x60 31 32")
    cookies = list(range(10000, 10000 + N))
    dev.client.burst([read_request(dev, c) for c in cookies])
    got = collect_replies(dev, [str(c) for c in cookies], timeout=30)
    assert got == dict((str(c), ["%d OK 31 32" % c]) for c in cookies)


def test_burst_of_100_with_a_slow_request_in_flight(dev, silent):
    dev.io("set ao 0x60 41 42")
    slow = "0 20000 0 127.0.0.1 %d %d 1 3 1 1" % (silent.port, SLOW_S)
    before = silent.accepted
    dev.client.send(slow)
    silent.wait_accepted(before + 1)  # the relay is busy with it
    cookies = list(range(20001, 20001 + N))
    dev.client.burst([read_request(dev, c) for c in cookies])
    got = collect_replies(dev, ["20000"] + [str(c) for c in cookies], timeout=SLOW_S + 30)
    want = {"20000": [refusals.timeout(textproto.parse(slow))]}
    for c in cookies:
        want[str(c)] = ["%d OK 41 42" % c]
    assert got == want


def test_burst_of_remote_requests_fills_jobs_then_queue(dev, silent):
    """20 requests to a server that never answers (TIMEOUT 1 s): the first PARALLEL take the
    jobs, the next QUEUE wait, the rest are answered "queue full"; every one exactly once."""
    slow = "0 %%d 0 127.0.0.1 %d 1 1 3 1 1" % silent.port
    cookies = list(range(25001, 25021))
    dev.client.burst([slow % c for c in cookies])
    got = collect_replies(dev, [str(c) for c in cookies], timeout=60)
    want = {}
    for i, c in enumerate(cookies):
        if i < PARALLEL + QUEUE:
            want[str(c)] = [refusals.timeout(textproto.parse(slow % c))]
        else:
            want[str(c)] = [turnaway.queue_full(slow % c, QUEUE)]
    assert got == want


def test_gateway_free_again_after_the_bursts(dev):
    dev.io("set ao 0x60 51 52")
    assert dev.request(read_request(dev, 30000), timeout=5) == "30000 OK 51 52"
