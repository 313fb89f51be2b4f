"""Heap in use of the cabinet module (issue 12, section 6): `.cache/venv/bin/python bench/cabinet_heap.py
[CONFIG.json]`.

The firmware as .mpy (umqtt.simple as .mpy too, as mip puts it on a board) on the 32-bit unix
port, started as `mbnode sim --mpy --rtu pty` starts it (the host's overlay and check of the
configuration, a pty pair for the RTU line), with the configuration in CONFIG (default
bench/cabinet.json: TCP, the RTU slave on the pty, the MQTT bridge with the bench's eight points;
every channel of the simulator's map is present). The file is a configuration like any other:
sections added to it (failsafe, io, system, ...) are checked and run as the firmware runs them.
The bench fills in what only it knows: the MQTT broker (a mosquitto it starts on a free
127.0.0.1 port; host, port, client_id and a topic prefix of its own), the RTU device (the pty)
and the TCP and control-channel ports.

Once the ready line is printed and the bridge said `online`, a few requests of every kind are
sent and each answer checked (bench/soak.py's clients): over Modbus TCP section (2)'s mixed
load of every function code with 4 connections, then each data operation of the soak once; over RTU
the same operations and FC08/FC11 (the line's diagnostics); over MQTT each gateway request of the
soak once to the device's TCP address (format 0) and once to its serial device (format 1), and a
`/set` write of every writable point with its `/res`; with a `system` section, reads of the status
registers (FC03 and FC04 at 0x2000 x15 and 0x2020 x16). Then, with nothing in flight, the heap is read three times
through the control channel's `heap` request (gc.collect(), gc.mem_alloc(), gc.mem_free();
docs/simulator.md) and the last figure printed: bytes in use after gc, the issue's figure.

Exit status 0 when everything was answered right (whatever the figure: a figure is reported,
not asserted; the verdict against the 48 KiB target is printed), 1 when something failed.
Everything started here is stopped here; every wait is bounded. Figures: docs/benchmarks.md,
"The cabinet module's heap".
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import client  # noqa: E402
import frames  # noqa: E402
from common import HOST, firmware_mpy, umqtt_path, verdict  # noqa: E402
from mqtt import Broker  # noqa: E402
from soak import (BROKER_CONF, REGIONS, SET_POINTS, Firmware, GatewayOps, ModbusOps, Paho, Replies,  # noqa: E402
                  RtuMaster, TcpClient, Wrong, wait_online)

from mbnode_host import paths, sim  # noqa: E402  (common put host/ on the path)

DEFAULT_CONFIG = BENCH_DIR / "cabinet.json"
TARGET = 48 * 1024  # issue 12, section 6: at most 48 KB in use (KiB here: the stricter reading is 48,000)
HEAP = "256K"  # room enough that the figure is the firmware's, not a heap that fails to start
UNIT = 1
TIMEOUT = 5.0  # s for one answer
ONLINE_TIMEOUT = 15.0


def read_config(path):
    try:
        given = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit("cabinet_heap: %s: %s" % (path, e))
    if type(given) is not dict:
        raise SystemExit("cabinet_heap: %s: allowed a JSON object (configuration sections)" % path)
    return given


def modbus_ops(transport, region, seed, extra=()):
    """Each operation of the soak's ModbusOps once (answers checked), then the extra PDUs (each
    must be answered without an exception). Returns the number of requests."""
    ops = ModbusOps(region, seed)
    for _ in ModbusOps.OPS:
        what, pdu, check = ops.next()
        try:
            check(transport.ask(pdu))
        except Exception as e:
            raise Wrong("%s: %s" % (what, e or type(e).__name__))
    for pdu in extra:
        answer = transport.ask(pdu)
        if not answer or answer[0] != pdu[0]:
            raise Wrong("PDU %s answered %s" % (pdu.hex(), answer.hex()))
    return len(ModbusOps.OPS) + len(extra)


def gateway_ops(broker, topics, tcp_port):
    """Each gateway request of the soak once in each format; every reply checked."""
    replies = Replies()

    def on_message(topic, payload, when):
        text = payload.decode("utf-8", "replace")
        replies.add(text.split(" ", 1)[0], when, text)

    paho = Paho(broker, "cabinet-gw", [topics["response"]], 0, on_message)
    ops = GatewayOps(REGIONS["mqtt-q0"], tcp_port, seed=5)
    n = 0
    try:
        for fmt in (0, 1):
            head = ("0 %%s 0 %s %d %d %d" % (HOST, tcp_port, TIMEOUT, UNIT) if fmt == 0
                    else "1 %%s rs485 %d %d" % (TIMEOUT, UNIT))
            for op in GatewayOps.OPS:
                n += 1
                cookie = str(7000 + n)
                what, rest, check = getattr(ops, op)(cookie)
                paho.publish(topics["request"], (head % cookie) + " " + rest, 0)
                got = replies.wait(cookie, time.monotonic() + TIMEOUT + 2)
                if got is None:
                    raise Wrong("gateway %s (format %d): no reply" % (what, fmt))
                try:
                    check(got[1])
                except Wrong as e:
                    raise Wrong("gateway %s (format %d): %s" % (what, fmt, e))
    finally:
        paho.close()
    return n


def set_ops(broker, root):
    """A /set write of each writable point: {"ok": true} on its /res."""
    got = {}
    cond = threading.Condition()

    def on_message(topic, payload, when):
        if topic.endswith("/res"):
            with cond:
                got[topic[len(root) + 1:-4]] = payload
                cond.notify_all()

    paho = Paho(broker, "cabinet-set", [root + "/+/res"], 1, on_message)
    values = {"ao64": 1234, "flow": 2.5, "mem1": -7, "do5": True}
    try:
        for point in SET_POINTS:
            paho.publish("%s/%s/set" % (root, point), json.dumps({"value": values[point]}), 1)
            deadline = time.monotonic() + TIMEOUT
            with cond:
                while point not in got and time.monotonic() < deadline:
                    cond.wait(max(0.01, deadline - time.monotonic()))
            answer = got.get(point)
            if answer is None or json.loads(answer).get("ok") is not True:
                raise Wrong("/set %s: /res %r" % (point, answer))
    finally:
        paho.close()
    return len(SET_POINTS)


def exercise(fw, given, broker, prefix):
    """Requests of every kind the configuration serves; returns {kind: count}."""
    done = {}
    # the status registers 0x2000-0x200E and the device name (issue 12, section 3)
    system = [struct.pack(">BHH", fc, a, n) for fc in (3, 4) for a, n in ((0x2000, 15), (0x2020, 16))
              ] if "system" in given else []
    # The mixed load first: its 4 connections take every slot (tcp.max_clients), and a 5th
    # arriving while the server has not yet seen one of them close would take its slot.
    ok, err = client.mixed_load(fw.port, frames.mbnode_mixed(), conns=4, per_conn=25, timeout=20)
    if err:
        raise Wrong("TCP mixed load: %s" % err)
    tcp = TcpClient(fw.port, UNIT, TIMEOUT)
    try:
        done["tcp"] = ok + modbus_ops(tcp, REGIONS["tcp1"], 1, system)
    finally:
        tcp.close()
    if fw.rtu_path and given.get("rtu", {}).get("enabled"):
        rtu = RtuMaster(fw.rtu_path, UNIT, TIMEOUT)
        try:
            # FC08 00 0B: bus message count; FC11: comm event counter (the line's diagnostics)
            done["rtu"] = modbus_ops(rtu, REGIONS["rtu"], 99, system + [bytes([8, 0, 0x0B, 0, 0]), bytes([11])])
        finally:
            rtu.close()
    if broker is not None:
        topics = {"request": prefix + "/request", "response": prefix + "/response"}
        done["mqtt gateway"] = gateway_ops(broker.port, topics, fw.port)
        done["mqtt /set"] = set_ops(broker.port, prefix + "/mbnode")
    return done


ROMFS_BINARY = paths.CACHE / "bin" / "micropython-32-romfs"


def romfs_image(out):
    """(binary, image): the same .mpy bundle (and umqtt.simple) as a ROMFS image, built by
    `mpremote romfs build` as for a board's ROMFS partition, for the unix port built with
    tools/unix-romfs.patch, which maps it outside the heap (`tools/build-micropython.sh romfs`
    builds it when it is missing or out of date: about 20 s)."""
    r = subprocess.run(["bash", str(paths.ROOT / "tools" / "build-micropython.sh"), "romfs"],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode or not ROMFS_BINARY.exists():
        raise SystemExit("cabinet_heap: building %s failed: %s" % (ROMFS_BINARY.name, (r.stdout + r.stderr)[-600:]))
    src = Path(out) / "romfs"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(firmware_mpy(32), src)
    shutil.copytree(umqtt_path(32, True) / "umqtt", src / "umqtt")
    image = Path(out) / "firmware.romfs"
    r = subprocess.run([sys.executable, "-m", "mpremote", "romfs", "--no-mpy", "-o", str(image), "build", str(src)],
                       capture_output=True, text=True, timeout=120)
    if r.returncode or not image.exists():
        raise SystemExit("cabinet_heap: mpremote romfs build failed: %s" % (r.stdout + r.stderr)[-400:])
    return ROMFS_BINARY, image


FROZEN_BINARY = paths.CACHE / "bin" / "micropython-32-frozen"


def frozen_binary(out):
    """The 32-bit unix port with the firmware (main.py and umqtt.simple too) frozen in, as a board
    image has it: `mbnode build --board unix` writes the frozen tree from the checkout, and
    `tools/build-micropython.sh frozen` builds the port with it (about 20 s once the source copy
    exists)."""
    tree = Path(out) / "unix"
    r = subprocess.run([sys.executable, "-c", "import sys; from mbnode_host.cli import main; sys.exit(main())",
                        "build", "--board", "unix", "--out", str(tree), "--quiet"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise SystemExit("cabinet_heap: mbnode build --board unix failed: %s" % (r.stdout + r.stderr)[-400:])
    r = subprocess.run(["bash", str(paths.ROOT / "tools" / "build-micropython.sh"), "frozen",
                        str(tree / "frozen" / "manifest.py")], capture_output=True, text=True, timeout=1800)
    if r.returncode or not FROZEN_BINARY.exists():
        raise SystemExit("cabinet_heap: building %s failed: %s" % (FROZEN_BINARY.name, (r.stdout + r.stderr)[-600:]))
    return FROZEN_BINARY


MODES = {"mpy": "as .mpy loaded into the heap", "romfs": "as .mpy in a ROMFS image", "frozen": "frozen into the port"}


def measure(given, heap, romfs=None, frozen=False):
    """(ready line, {kind: requests}, (in use, free) after gc, [in use of each sample]).
    romfs: run the .mpy files from a ROMFS image; frozen: run the port with the firmware frozen."""
    given = json.loads(json.dumps(given))
    mqtt = given.get("mqtt")
    broker = fw = None
    prefix = "cab%d" % os.getpid()
    try:
        with tempfile.TemporaryDirectory(prefix="mbnode-cabinet-") as tmp:
            if mqtt and mqtt.get("enabled"):
                broker = Broker(extra=BROKER_CONF)
                mqtt.update(host=HOST, port=broker.port, client_id="mbnode-" + prefix, prefix=prefix)
            fw = Firmware(sim.parse_size(heap, 32), None, tmp, with_rtu=bool(given.get("rtu", {}).get("enabled")),
                          given=given, romfs=romfs_image(tmp) if romfs else None,
                          frozen=frozen_binary(tmp) if frozen else None)
            if broker is not None and not wait_online(broker.port, prefix + "/mbnode/status", ONLINE_TIMEOUT):
                raise Wrong("the bridge never said online on %s/mbnode/status" % prefix)
            done = exercise(fw, given, broker, prefix)
            samples = [fw.heap() for _ in range(3)]
            if not fw.alive():
                raise Wrong("the firmware exited")
            problems = [p for p in fw.problems()]
            if problems:
                raise Wrong("the firmware printed: %s" % problems[0][:200])
            return fw.ready, done, samples[-1], [u for u, _ in samples]
    finally:
        if fw is not None:
            fw.stop()
        if broker is not None:
            broker.stop()


def run(config=DEFAULT_CONFIG, heap=HEAP):
    """bench/run.py section (c): summary rows for the .mpy (reported: loaded into the heap, the
    code is in it), the ROMFS (the issue's figure) and the frozen figure."""
    given = read_config(config)
    rows = []
    for mode in ("mpy", "romfs", "frozen"):
        what = "(c) heap in use, unix 32-bit, firmware %s, %s" % (MODES[mode], Path(config).name)
        ready, done, (used, free), uses = measure(given, heap, mode == "romfs", mode == "frozen")
        print("cabinet_heap: %s: %d bytes in use (requests: %s)" % (what, used, ", ".join("%s %d" % kv for kv in done.items())))
        rows.append((what + ": <= %d" % TARGET, "%d B" % used, verdict(used <= TARGET)))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG),
                    help="configuration sections (JSON) the firmware runs with (default bench/cabinet.json)")
    ap.add_argument("--heap", default=HEAP, help="MicroPython heap (default %s)" % HEAP)
    ap.add_argument("--runs", type=int, default=1, help="starts measured, one after the other (default 1)")
    ap.add_argument("--romfs", action="store_true",
                    help="the same .mpy files from a ROMFS image mapped outside the heap (micropython-32-romfs: "
                         "`bash tools/build-micropython.sh romfs`), as a board with a ROMFS partition runs them")
    ap.add_argument("--frozen", action="store_true",
                    help="the firmware frozen into the port (micropython-32-frozen, built here from the checkout "
                         "by `tools/build-micropython.sh frozen`), as a board image has it")
    args = ap.parse_args(argv)
    if args.romfs and args.frozen:
        ap.error("--romfs and --frozen: choose one")
    mode = "romfs" if args.romfs else "frozen" if args.frozen else "mpy"
    given = read_config(args.config)
    figures = []
    for i in range(max(1, args.runs)):
        t0 = time.monotonic()
        try:
            ready, done, (used, free), uses = measure(given, args.heap, args.romfs, args.frozen)
        except (Wrong, RuntimeError, OSError) as e:
            print("cabinet_heap: FAIL: %s" % e)
            return 1
        figures.append(used)
        print("cabinet_heap: %s" % ready)
        print("cabinet_heap: requests answered: %s" % ", ".join("%s %d" % kv for kv in done.items()))
        print("cabinet_heap: run %d: %d bytes in use after gc (%.1f KiB), %d free of %s (samples %s) [%.0f s]"
              % (i + 1, used, used / 1024, free, args.heap, " ".join(map(str, uses)), time.monotonic() - t0))
    worst = max(figures)
    print("cabinet_heap: %s, firmware %s on micropython-32: %d bytes in use; target <= %d: %s"
          % (Path(args.config).name, MODES[mode], worst, TARGET, verdict(worst <= TARGET)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
