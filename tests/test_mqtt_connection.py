"""The bridge's own connection rules: keepalive pings keep it connected through silence; a
broker that accepts TCP but never answers MQTT holds Modbus serving back no longer than the
bridge's budget (mbnode.mqtt.bridge.BUDGET_MS = 1 s per turn), however often it retries; user
and password reach a broker that requires them, and a wrong password leaves Modbus serving
alone.
"""

import subprocess
import time

import pytest

from conftest import Sim, need, need_tool
from mbtest import pymodbus, unit
from mqtttest import Broker, Client, SilentServer, Topics, mqtt_config, need_paho

if pymodbus is not None:
    from pymodbus.client import ModbusTcpClient

BUDGET_S = 1.0


@pytest.fixture(autouse=True)
def _needs():
    need_paho()
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


def test_keepalive_pings_keep_a_silent_bridge_connected(tmp_path):
    broker = Broker(tmp_path).start()
    try:
        topics = Topics(root="ka")
        watcher = Client(broker, subscribe=[topics.status, topics.response], topics=topics)
        sim = Sim(tmp_path=tmp_path, config=mqtt_config(broker, topics, client_id="ka-dev", keepalive=2))
        try:
            watcher.wait(topics.status, lambda m: m.text == "online")
            # mosquitto drops a client silent for 1.5 x keepalive (3 s) and then sends its will.
            watcher.absent(topics.status, lambda m: m.text == "offline", duration=7.0)
            reply = watcher.request("0 5 0 %s %d 2 1 3 1 1" % (sim.host, sim.port))
            assert reply == "5 OK 0"
        finally:
            sim.stop()
            watcher.close()
        log = broker.log.read_text(errors="replace")
        assert "ka-dev" in log and "exceeded timeout" not in log, log[-2000:]
    finally:
        broker.stop()


def test_a_broker_that_never_answers_delays_modbus_at_most_the_budget(tmp_path):
    silent = SilentServer()  # accepts the MQTT connection, never sends CONNACK
    cfg = mqtt_config(silent, Topics(), reconnect={"initial_s": 1, "max_s": 1, "factor": 1})
    sim = Sim(tmp_path=tmp_path, config=cfg)
    try:
        c = ModbusTcpClient(sim.host, port=sim.port, timeout=5.0, retries=0)
        assert c.connect()
        worst = 0.0
        polls = 0
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            rr = c.read_holding_registers(0, count=2, **unit())
            worst = max(worst, time.monotonic() - t0)
            polls += 1
            assert not rr.isError(), rr
            time.sleep(0.05)
        c.close()
        # Each connect attempt waited for a CONNACK that never came, within the budget.
        assert silent.accepted >= 2, "the bridge tried %d times" % silent.accepted
        assert worst < BUDGET_S + 1.0, "a Modbus poll waited %.2f s (budget %.1f s)" % (worst, BUDGET_S)
        assert polls > 20
    finally:
        sim.stop()
        silent.stop()


def test_user_and_password_reach_the_broker(tmp_path):
    broker = Broker(tmp_path)
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run([need_tool("mosquitto_passwd"), "-b", str(pwfile), "mb-user", "s3cret pass"], check=True, timeout=30)
    # "user root": mosquitto started as root would switch to its own user, who cannot read pytest's
    # private tmp directory; started as another user it ignores the line.
    broker.conf.write_text("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\npersistence false\nuser root\n"
                           % (broker.port, pwfile))
    broker.start()
    topics = Topics(root="auth")
    watcher = Client(broker, subscribe=[topics.status, topics.response], topics=topics,
                     auth=("mb-user", "s3cret pass"))
    good = Sim(tmp_path=tmp_path, config=mqtt_config(broker, topics, client_id="auth-good", user="mb-user",
                                                     password="s3cret pass"))
    bad = Sim(tmp_path=tmp_path, config=mqtt_config(broker, Topics(root="auth-bad"), client_id="auth-bad",
                                                    user="mb-user", password="wrong"))
    try:
        watcher.wait(topics.status, lambda m: m.text == "online")
        assert watcher.request("0 9 0 %s %d 2 1 3 1 1" % (good.host, good.port)) == "9 OK 0"
        deadline = time.monotonic() + 10
        log = ""
        while time.monotonic() < deadline and "not authorised" not in log:
            time.sleep(0.2)
            log = broker.log.read_text(errors="replace")
        assert "u'mb-user'" in log and "auth-good" in log, log[-2000:]
        # The wrong password is refused (mosquitto names no client id then: only the bad
        # device sends one) and that device keeps serving Modbus.
        assert "not authorised" in log, log[-2000:]
        c = ModbusTcpClient(bad.host, port=bad.port, timeout=5.0, retries=0)
        assert c.connect() and not c.read_holding_registers(0, count=1, **unit()).isError()
        c.close()
    finally:
        good.stop()
        bad.stop()
        watcher.close()
        broker.stop()
