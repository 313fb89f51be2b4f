"""Fail-safe's heap cost: the heap in use after gc.collect() (`heap` on the simulator's control
channel) on the 32-bit unix build with the firmware as .mpy files, with Modbus TCP, RTU (a pty)
and the MQTT bridge (a mosquitto of its own) on and the full map, without and with a "failsafe"
section (every coil and AO channel given a safe value: the largest set of prepared requests).

    .cache/venv/bin/python bench/failsafe.py

Prints one line per configuration and the difference. Not part of `make bench` (it needs
mosquitto); docs/reliability.md and the report quote its figures.
"""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "firmware"), str(ROOT / "host")]

from conftest import Sim  # noqa: E402
from mqtttest import Broker, Topics, mqtt_config  # noqa: E402

FAILSAFE = {"timeout_ms": 5000, "do": {"0-3": "on", "4": "hold"}, "ao": {"1": "hold"}, "memory": {"1-4": 0}}


def heap(tmp, broker, extra):
    cfg = mqtt_config(broker, Topics(root="bench-fs"), config=extra)
    sim = Sim(bits=32, config=cfg, heap="256K", mpy=True, tmp_path=tmp, rtu="pty")
    try:
        reply = sim.io_cmd("heap").split()
        assert reply[0] == "ok", reply
        return int(reply[1])
    finally:
        sim.stop()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(tmp).start()
        try:
            rows = []
            for name, extra in (("TCP + RTU + MQTT", {}), ("TCP + RTU + MQTT + failsafe", {"failsafe": FAILSAFE})):
                used = [heap(tmp, broker, extra) for _ in range(3)]
                rows.append((name, min(used)))
                print("%-30s heap in use %6d bytes (3 starts: %s)" % (name, min(used), used))
            print("failsafe costs %d bytes" % (rows[1][1] - rows[0][1]))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
