"""Runs the PDU engine's cases (pdu_cases.py, pdu_guard_cases.py) on CPython (pytest) and the
MicroPython unix port and emulated MCUs.

A case: (name, setup, steps, options). setup is a list of field-side writes done on a fresh data
model before the steps: ("bit", table, address, value) | ("reg", table, address, value) |
("u32", position, value). steps: (request PDU hex, expected response PDU hex[, source]); spaces in
hex are ignored; source is the Engine's (mbnode.pdu SOURCE_*: 0 local, the default, 1 RTU, 2 TCP,
3 MQTT, 4 TCP from a trusted address). options: {"present": per-table ranges, "identity": dict,
"failing_output": True, "outputs": [(table, first, count), ...], "protect": a checked "protect"
section (the Engine's guard is mbnode.protect.Guard of it), "block": a function that makes a
register block for Engine.blocks, "remote": one that makes Engine.remote}. Every case runs with two recording output subscribers (and,
with failing_output, one that raises between them): each output change must reach both, in
subscription order; "outputs" lists the changes the steps must make, in order.
"""

import binascii
import gc

from mbnode import memory32
from mbnode.datamodel import DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine

IDENTITY = {
    "vendor_name": "mbnode",
    "product_code": "MBN-1",
    "revision": "0.1.0",
    "vendor_url": "",
    "product_name": "Sim",
    "model_name": "unix",
    "user_application_name": "",
    "device_name": "sim-node",
}


def hx(text):
    return binascii.unhexlify(text.replace(" ", ""))



def _failing_output(table, first, count):
    raise RuntimeError("output driver failed")


def run_case(case):
    """Run one case; returns a list of failure messages (empty = passed)."""
    name, setup, steps, options = case
    # The last case's model is garbage now: collected first, so every case finds its 5 KB
    # register buffer in one piece on the emulated MCUs' small heaps (tests/mcu/test_qemu.py).
    gc.collect()
    model = DataModel(options.get("present"))
    calls = []
    model.subscribe(lambda table, first, count: calls.append((1, table, first, count)))
    if options.get("failing_output"):
        model.subscribe(_failing_output)
    model.subscribe(lambda table, first, count: calls.append((2, table, first, count)))
    engine = Engine(model, DeviceIdentification(options.get("identity", IDENTITY), 1))
    if "protect" in options:
        from mbnode.protect import Guard

        engine.guard = Guard(options["protect"])
    if "block" in options:
        engine.blocks.append(options["block"]())
    if "remote" in options:
        engine.remote = options["remote"]()
    for op in setup:
        if op[0] == "bit":
            model.set_bit(op[1], op[2], op[3])
        elif op[0] == "reg":
            model.set_reg(op[1], op[2], op[3])
        else:
            memory32.set_u32(model, op[1], op[2])
    failures = []
    req = bytearray(300)
    resp = bytearray(260)
    for step in steps:
        request, expected = step[0], step[1]
        pdu = hx(request)
        # Put the PDU at an offset, as the transports do, to prove offsets are honoured.
        for i in range(len(pdu)):
            req[7 + i] = pdu[i]
        n = engine.handle(req, 7, len(pdu), resp, 3, None, step[2] if len(step) > 2 else 0)
        got = bytes(resp[3:3 + n])
        if got != hx(expected):
            failures.append("%s: %s%s -> %s, expected %s" % (
                name, request, " (source %d)" % step[2] if len(step) > 2 else "", binascii.hexlify(got).decode(),
                expected.replace(" ", "").lower()))
    firsts = [c[1:] for c in calls if c[0] == 1]
    if calls != [(k, ) + c for c in firsts for k in (1, 2)]:
        failures.append("%s: not every output change reached both subscribers in order: %r" % (name, calls))
    if "outputs" in options and firsts != options["outputs"]:
        failures.append("%s: output changes %r, expected %r" % (name, firsts, options["outputs"]))
    return failures


def run_all(cases):
    """Every case, a FAIL line per failure and "N passed, M failed"; returns M."""
    passed = failed = 0
    for case in cases:
        f = run_case(case)
        if f:
            failed += 1
            for line in f:
                print("FAIL", line)
        else:
            passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return failed
