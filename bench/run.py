"""mbnode benchmark (`make bench`): `.cache/venv/bin/python bench/run.py [options]`.

Compares three Modbus TCP slaves serving the same register map shape
(64 coils, 64 discrete inputs, 128 holding, 128 input registers):

  a  mbnode: this repository's firmware on the MicroPython unix port (32-bit, and 64-bit)
  b  micropython-modbus 2.3.7 (`umodbus`), downloaded from PyPI at bench time into
     .cache/bench/, on the same unix-port binary (bench/umodbus_server.py)
  c  pymodbus 3.x TCP server on CPython (bench/pymodbus_server.py)

and prints one table per section, with targets and PASS/MISS:

  (1) requests/s and server CPU per request (utime+stime from /proc/<pid>/stat / requests) for
      FC03 x125, FC01 x64, FC16 x50, FC16 x123; lean raw-socket closed-loop client, one
      persistent connection, RUNS runs per target and request, targets alternating run by run.
      Target: a <= b/5 (same binary) and a < c.                        (bench/throughput.py)
  (2) smallest -X heapsize at which the firmware as .mpy starts and serves a mixed load
      (every function code, max sizes, 4 connections), bisected in 1 KiB steps, 3 repeats per
      size, 32- and 64-bit; b measured the same way as .mpy. Target: <= 32 KiB on 32-bit,
      stretch 24 KiB.                                                        (bench/heap.py)
  (3) heap bytes allocated per request in steady state through the whole TCP path
      (bench/alloc_probe.py: gc.mem_alloc() with gc disabled, then micropython.heap_lock()).
      Target: 0.                                                             (bench/alloc.py)
  (4) CPU % while idle, with no client and with one silent client. Target: near 0 (<= 1 %).
                                                                             (bench/idle.py)
  (r) Modbus RTU on a pty, 32-bit: turnaround (last request byte -> first response byte) vs
      micropython-modbus, CPU on an idle line, CRC speed, heap bytes per request, requests
      dribbled byte by byte on an idle and a loaded machine (lost, wake-ups). (bench/rtu.py)
  (p) `mbnode probe`: seconds and frames to find an RTU device at 38400 8O1 unit 17 knowing
      nothing, beside a naive 1 s-timeout sweep. Target: 10x faster. About 2.5 min. (bench/probe.py)
  (m) MQTT bridge, 32-bit, with a mosquitto the bench starts: smallest heap with the bridge on
      beside off, and the gateway's FC03 x10 round trip (local target, pymodbus target) beside a
      direct Modbus TCP one. Needs mosquitto and paho-mqtt. About 1-2 minutes. (bench/mqtt.py)
  (x) Extension modules, 32-bit: the poll cycle of 8 modules x (16 DI + 8 AI) on an emulated
      RTU line at 115200 against its wire-time lower bound (target 1.5x), and the heap of the
      master with 1 and 8 modules. About 30 s.                            (bench/extension.py)
  (o) the poller, 32-bit, firmware as .mpy: heap after start of a simulator polling 16 requests
      (8 over TCP from a second simulator, 8 over RTU from a third on a socat pty pair) with 8
      alarms, beside the RTU master alone and the default configuration; its growth over 30 s
      of polling; the smallest heap it starts and polls with. About 1 minute. (bench/poller.py)
  (e) Modbus RTU on the emulated Raspberry Pi Pico (make setup-mcu and the boot ROM): mbnode
      deployed as .mpy and frozen in the image beside micropython-modbus on the same emulator:
      heap after boot, requests lost of 1000 at 19200 8E1 and 115200 8N2, turnaround and busy
      cycles per FC03 x125 / FC16 x123, busy while receiving and idle. Not run (a SKIP row)
      without the MCU set-up. About 13 minutes; --mcu-count 200 --mcu-timing 20: about 4.
                                                                             (bench/mcu.py)
  (c) the cabinet module's heap (issue 12, section 6): bytes in use after gc once started and
      after requests of every kind, 32-bit unix port with bench/cabinet.json (TCP, RTU, MQTT,
      full map) as .mpy loaded into the heap (reported), as .mpy in place from a ROMFS image
      (the issue's figure) and frozen; the emulated Pico with mbnode frozen and
      bench/cabinet-pico.json (SKIP without the MCU set-up). Target: <= 48 KiB. About 30 s,
      plus the builds of the ROMFS and frozen ports and the Pico image.
                                                  (bench/cabinet_heap.py, bench/cabinet_pico.py)

Only 127.0.0.1 is used; every server is started and stopped by the bench itself; every loop is
bounded in count and time. Total runtime is about 6 minutes on a 2-core machine without (m)
(the probe section alone takes about 2.5 minutes), plus about 13 minutes for (e). The exit status is
1 when a section could not run (ERROR) or mbnode lost a request (FAIL); a missed target (MISS)
is a figure, not a failure.
"""

import argparse
import os
import platform
import sys
import time

import alloc
import cabinet_heap
import cabinet_pico
import extension
import fetch
import heap
import idle
import mcu
import mqtt
import poller
import probe
import rtu
import targets
import throughput
from common import ROOT, micropython, mpy_cross, table


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sections", default="1234rpmxoec", help="which sections to run, e.g. 13r (default 1234rpmxoec)")
    p.add_argument("--bits", default="32,64", help="unix-port builds for mbnode/umodbus (default 32,64)")
    p.add_argument("--runs", type=int, default=throughput.RUNS, help="runs per target and request in (1)")
    p.add_argument("--seconds", type=float, default=throughput.SECONDS, help="length of one run in (1)")
    p.add_argument("--split-cpus", action="store_true",
                   help="(1): client and servers on different CPUs instead of pinned to one")
    p.add_argument("--mcu-count", type=int, default=mcu.COUNT,
                   help="(e): requests per target and line setting (default %d)" % mcu.COUNT)
    p.add_argument("--mcu-timing", type=int, default=mcu.TIMING,
                   help="(e): measured requests per timing row (default %d)" % mcu.TIMING)
    return p.parse_args(argv)


def describe_setup(bits_list):
    import pymodbus

    print("mbnode bench  %s  python %s  %d CPUs  %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), platform.python_version(), os.cpu_count(),
        _cpu_model()))
    for bits in bits_list:
        print("  micropython-%d: %s" % (bits, micropython(bits)))
    print("  mpy-cross:      %s" % mpy_cross())
    print("  umodbus:        %s (micropython-modbus 2.3.7 from PyPI)" % fetch.umodbus_dir())
    print("  pymodbus:       %s" % pymodbus.__version__)
    print("  firmware:       %s" % (ROOT / "firmware"))
    sys.stdout.flush()


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main(argv=None):
    args = parse_args(argv)
    bits_list = tuple(int(b) for b in args.bits.split(","))
    throughput.RUNS = args.runs
    throughput.SECONDS = args.seconds
    start = time.monotonic()
    describe_setup(bits_list)
    sections = {
        "1": lambda: throughput.run(targets.all_targets(bits_list), args.split_cpus),
        "2": lambda: heap.run(bits_list),
        "3": lambda: alloc.run(bits_list),
        "4": lambda: idle.run(targets.all_targets(bits_list)),
        "r": lambda: rtu.run(),
        "p": lambda: probe.run(),
        "m": lambda: mqtt.run(),
        "x": lambda: extension.run(),
        "o": lambda: poller.run(),
        "e": lambda: mcu.run(count=args.mcu_count, timing=args.mcu_timing),
        "c": lambda: cabinet_heap.run() + cabinet_pico.run(),
    }
    summary = []
    failed = False
    for key in args.sections:
        t0 = time.monotonic()
        try:
            summary += sections[key]()
        except Exception as e:  # noqa: BLE001 - report it, run the other sections
            failed = True
            summary.append(("(%s)" % key, "ERROR %s: %s" % (type(e).__name__, e), "ERROR"))
            print("\nsection (%s) failed: %s: %s" % (key, type(e).__name__, e))
        print("[section (%s): %.0f s]" % (key, time.monotonic() - t0))
    table("Summary (a = mbnode)", ["target", "measured", "verdict"], summary,
          note="total runtime %.0f s" % (time.monotonic() - start))
    failed = failed or any(row[2] in ("ERROR", "FAIL") for row in summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
