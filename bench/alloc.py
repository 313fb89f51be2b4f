"""Section 3: heap bytes allocated per request in steady state (bench/alloc_probe.py on the unix
port; the CPython client here sends the requests in lock step), plus a heap_lock() check.
micropython-modbus is measured the same way (gc.disable() + gc.mem_alloc() around COUNT served
requests) by bench/umodbus_server.py in its "alloc" mode."""

import os

import client
import fetch
import frames
from common import BENCH, Server, free_port, micropython, paths, table, verdict

WARM = 100
COUNT = 200
B_COUNT = 40  # micropython-modbus allocates kilobytes per request: keep its gc-off span short

REQUESTS = [
    frames.read_regs(3, 0, 125),
    frames.read_bits(1, 0, 64),
    frames.write_regs(0, 123),
    frames.read_write_regs(0, 125, 0x40, 121),
    frames.device_id(2),
]


def _drive(port, req, total):
    """Send `total` requests in lock step on one connection; None or the failure text."""
    s = client.connect(port, timeout=3)
    try:
        if req.resp_len is None:  # FC43: learn the response length from the first answer
            s.sendall(req.adu)
            adu = client.read_adu(s)
            if adu[7] != req.fc:
                return "exception response %s" % adu[7:9].hex()
            req.resp_len = len(adu)
            total -= 1
        n, _ = client.lean_loop(s, req, 30.0, total)
        return None if n == total else "only %d of %d answered" % (n, total)
    except client.Failed as e:
        return str(e)
    finally:
        s.close()


def mbnode_alloc(bits, req):
    """(bytes per request or None, heap_lock verdict text)."""
    port = free_port()
    path = [".frozen", str(paths.BOARDS / "unix"), str(paths.FIRMWARE)]
    env = dict(os.environ, MICROPYPATH=":".join(path))
    argv = [micropython(bits), "-X", "heapsize=1M", str(BENCH / "alloc_probe.py"),
            "tcp", str(port), str(WARM), str(COUNT)]
    srv = Server("alloc-probe-%d" % bits, argv, env=env)
    try:
        err = _drive(port, req, WARM + 2 * COUNT + 1)
        out = srv.output(3 if err else 10)
    finally:
        srv.stop()
    per_req, locked = None, err or "no result"
    for line in out.splitlines():
        w = line.split()
        if w[:1] == ["alloc"]:
            per_req = int(w[1]) / int(w[2])
        elif w[:1] == ["locked"]:
            locked = line[len("locked "):] if not err else err
    return per_req, locked


def umodbus_alloc(bits, req):
    port = free_port()
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(fetch.umodbus_dir()))
    argv = [micropython(bits), "-X", "heapsize=4M", str(BENCH / "umodbus_server.py"),
            str(port), "60", "alloc", str(WARM), str(B_COUNT)]
    srv = Server("umodbus-alloc-%d" % bits, argv, env=env)
    try:
        err = _drive(port, req, WARM + B_COUNT + 2)
        # The result line comes while it keeps serving: read it, then stop the server.
        line = srv.wait_line("alloc", 10) if not err else ""
    finally:
        srv.stop()
    w = line.split()
    return (int(w[1]) / int(w[2]) if w[:1] == ["alloc"] else None), err


def _b_cell(bits, req):
    if req.fc in (23, 43):
        return "n/a (no FC%d)" % req.fc
    if req.fc == 16 and len(req.adu) > 128:
        return "fail (>57 regs)"
    per_req, err = umodbus_alloc(bits, req)
    return "%.0f" % per_req if per_req is not None else "fail: %s" % err


def run(bits_list=(32, 64)):
    rows = []
    for req in REQUESTS:
        row = [req.name]
        ok = True
        for bits in bits_list:
            per_req, locked = mbnode_alloc(bits, req)
            ok = ok and per_req == 0 and locked == "ok"
            row += ["fail" if per_req is None else "%.0f" % per_req, locked, _b_cell(bits, req)]
        row += ["0", verdict(ok)]
        rows.append(row)
    header = ["request"]
    for bits in bits_list:
        header += ["a%d B/req" % bits, "a%d under heap_lock" % bits, "b%d B/req" % bits]
    header += ["target a", "a"]
    table("(3) Heap bytes allocated per request in steady state, whole TCP path",
          header, rows,
          note=["a = mbnode: gc.mem_alloc() delta over %d requests after %d warm-up, gc disabled "
                "(bench/alloc_probe.py), then %d more under micropython.heap_lock()." % (COUNT, WARM, COUNT),
                "b = micropython-modbus 2.3.7, same method over %d requests (reference: 7.6 KB per "
                "FC03 x125 on 64-bit)." % B_COUNT])
    passed = sum(1 for r in rows if r[-1] == "PASS")
    return [("(3) heap bytes per request: 0, heap_lock clean", "%d of %d requests pass"
             % (passed, len(rows)), verdict(passed == len(rows)))]
