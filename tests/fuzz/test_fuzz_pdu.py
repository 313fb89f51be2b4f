"""The PDU engine under mutated requests (CPython; the same source the boards run).

Invariants, whatever the request bytes:
- handle() never raises, and always answers (TCP needs a reply to every request);
- an exception reply is exactly (fc | 0x80, code) with code 1, 2 or 3: 04 (device failure) would
  mean the engine tripped over its own feet;
- an exception or a read leaves the data model as it was: state changes only through valid writes;
- a normal reply is well-formed for its request: the function code echoed, the byte count and
  length a read of that quantity needs, the echo a write of that kind sends;
- a write changes exactly the addressed channels, to the values the request carries.
With write protection (mbnode.protect's guard, ranges drawn near what the request writes, every
source): the same, and the exception code is what an independent reading of the "protect"
rules (docs/configuration.md) says: 02 for a write touching a channel its source may not write.
"""

import struct

from hypothesis import example, given
from hypothesis import strategies as st

import fuzzing
import pdu_cases
from fuzzing import u16
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine
from mbnode.protect import Guard

PROPERTY = fuzzing.per_target(2)  # this target's properties share `make fuzz`'s inputs

PRESENTS = [
    None,  # the whole map
    # a board's onboard channels and the memory registers, as the pico's defaults
    [[(0, 7)], [(0, 3)], [(0, 1), (0x1000, 0x17FF)], [(0, 2), (0x1000, 0x17FF)]],
]


def fresh(present, seed):
    model = DataModel()
    if present is not None:
        model.set_present(present)
    # Some known content, so that a write to the wrong place shows.
    for i in range(len(model.regs)):
        model.regs[i] = (i * 7 + seed) & 0xFF
    for t in (COILS, DISCRETE_INPUTS):
        for i in range(len(model.bits[t])):
            model.bits[t][i] = (i * 13 + seed) & 0xFF
    return model


def snapshot(model):
    return bytes(model.regs), bytes(model.bits[0]), bytes(model.bits[1])


def read_request():
    return st.tuples(st.sampled_from([1, 2, 3, 4]), u16(), u16()).map(lambda t: struct.pack(">BHH", *t))


def write_single():
    return st.tuples(st.sampled_from([5, 6]), u16(), st.one_of(st.sampled_from([0, 0xFF00, 0x3FF, 0x400]), u16())
                     ).map(lambda t: struct.pack(">BHH", *t))


@st.composite
def write_multiple(draw):
    fc = draw(st.sampled_from([15, 16]))
    first, qty = draw(u16()), draw(u16())
    right = (qty + 7) // 8 if fc == 15 else 2 * qty
    count = draw(st.one_of(st.just(right & 0xFF), st.integers(0, 255)))
    data = draw(st.binary(min_size=0, max_size=count + 2).filter(lambda b: True))
    if draw(st.booleans()) and len(data) < count:
        data = data + bytes(count - len(data))
    return struct.pack(">BHHB", fc, first, qty, count) + data[:250]


@st.composite
def mask_or_readwrite(draw):
    if draw(st.booleans()):
        return struct.pack(">BHHH", 22, draw(u16()), draw(u16()), draw(u16()))
    rfirst, rqty, wfirst, wqty = draw(u16()), draw(u16()), draw(u16()), draw(u16())
    count = draw(st.one_of(st.just((2 * wqty) & 0xFF), st.integers(0, 255)))
    data = draw(st.binary(min_size=0, max_size=242))
    return (struct.pack(">BHHHHB", 23, rfirst, rqty, wfirst, wqty, count) + data)[:253]


def anything():
    return st.binary(min_size=1, max_size=253)


REQUESTS = st.one_of(read_request(), write_single(), write_multiple(), mask_or_readwrite(), anything(),
                     st.tuples(st.sampled_from([8, 17, 43, 7, 11, 12, 24, 0, 0x80, 0xFF]), st.binary(max_size=20))
                     .map(lambda t: bytes([t[0]]) + t[1]))


def _u16(b, o):
    return (b[o] << 8) | b[o + 1]


def check_reply(req, resp, r, before, after):
    fc = req[0]
    assert 2 <= r <= 253, r
    if resp[0] & 0x80:
        assert r == 2 and resp[0] == fc | 0x80, resp[:r].hex()
        assert resp[1] in (1, 2, 3), "exception %d to %s" % (resp[1], req.hex())
        assert after == before, "an exception reply changed the model"
        return
    assert resp[0] == fc, (req.hex(), resp[:r].hex())
    if fc in (1, 2, 3, 4):
        qty = _u16(req, 3)
        want = (qty + 7) // 8 if fc in (1, 2) else 2 * qty
        assert len(req) == 5 and resp[1] == want and r == 2 + want, (req.hex(), resp[:r].hex())
        assert after == before, "a read changed the model"
    elif fc in (5, 6):
        assert r == 5 and bytes(resp[:5]) == req, (req.hex(), resp[:r].hex())
    elif fc in (15, 16):
        assert r == 5 and bytes(resp[:5]) == req[:5], (req.hex(), resp[:r].hex())
    elif fc == 22:
        assert r == 7 and bytes(resp[:7]) == req, (req.hex(), resp[:r].hex())
    elif fc == 23:
        qty = _u16(req, 3)
        assert resp[1] == 2 * qty and r == 2 + 2 * qty, (req.hex(), resp[:r].hex())
    elif fc == 8:
        assert bytes(resp[:r]) == req and req[1:3] == b"\0\0", (req.hex(), resp[:r].hex())
    elif fc in (17, 43):
        assert after == before
    else:
        raise AssertionError("function %d answered normally: %s" % (fc, resp[:r].hex()))


# --- what the spec and docs/register-map.md say a request must get, written out independently

FULL = [[(0, 0x23F)], [(0, 0x23F)], [(0, 0x13F), (0x1000, 0x17FF)], [(0, 0x13F), (0x1000, 0x17FF)]]


def inside(ranges, first, qty):
    return any(lo <= first and first + qty - 1 <= hi for lo, hi in ranges)


def never(table, first, qty):
    return False


def expected_code(req, present, regs, blocked=never):
    """0 when the request must succeed, else the exception code it must get (data functions:
    quantity, byte count and length first (03), then the address (02: absent, or a write that
    blocked(table, first, qty) says write protection refuses), then values an address limits
    (03: onboard AO is 10-bit)); None for the other functions."""
    fc, n = req[0], len(req)
    bits, holding = present[COILS if fc != 2 else DISCRETE_INPUTS], present[HOLDING]

    def ao_ok(first, values):
        return all(v <= 0x3FF for i, v in enumerate(values) if first + i < 0x40)

    if fc in (1, 2, 3, 4):
        if n != 5:
            return 3
        first, qty = _u16(req, 1), _u16(req, 3)
        if not 1 <= qty <= (0x240 if fc in (1, 2) else 125):
            return 3
        return 0 if inside(bits if fc in (1, 2) else present[fc - 1], first, qty) else 2
    if fc == 5:
        if n != 5 or _u16(req, 3) not in (0, 0xFF00):
            return 3
        return 0 if inside(bits, _u16(req, 1), 1) and not blocked(COILS, _u16(req, 1), 1) else 2
    if fc == 6:
        if n != 5:
            return 3
        if not inside(holding, _u16(req, 1), 1) or blocked(HOLDING, _u16(req, 1), 1):
            return 2
        return 0 if ao_ok(_u16(req, 1), [_u16(req, 3)]) else 3
    if fc in (15, 16):
        if n < 6:
            return 3
        first, qty, count = _u16(req, 1), _u16(req, 3), req[5]
        limit, need = (0x240, (qty + 7) // 8) if fc == 15 else (123, 2 * qty)
        if not 1 <= qty <= limit or count != need or n != 6 + count:
            return 3
        if not inside(bits if fc == 15 else holding, first, qty) or blocked(COILS if fc == 15 else HOLDING, first, qty):
            return 2
        if fc == 16 and not ao_ok(first, [_u16(req, 6 + 2 * i) for i in range(qty)]):
            return 3
        return 0
    if fc == 22:
        if n != 7:
            return 3
        addr = _u16(req, 1)
        if not inside(holding, addr, 1) or blocked(HOLDING, addr, 1):
            return 2
        off = 2 * addr if addr < 0x1000 else 4 * 0x140 + 2 * (addr - 0x1000)
        value = (_u16(regs, off) & _u16(req, 3)) | (_u16(req, 5) & ~_u16(req, 3) & 0xFFFF)
        return 0 if ao_ok(addr, [value]) else 3
    if fc == 23:
        if n < 10:
            return 3
        rfirst, rqty, wfirst, wqty, count = _u16(req, 1), _u16(req, 3), _u16(req, 5), _u16(req, 7), req[9]
        if not 1 <= rqty <= 125 or not 1 <= wqty <= 121 or count != 2 * wqty or n != 10 + count:
            return 3
        if not inside(holding, wfirst, wqty) or not inside(holding, rfirst, rqty) or blocked(HOLDING, wfirst, wqty):
            return 2
        return 0 if ao_ok(wfirst, [_u16(req, 10 + 2 * i) for i in range(wqty)]) else 3
    return None


def bits_of(bitmap, first, qty):
    return [(bitmap[(first + i) >> 3] >> ((first + i) & 7)) & 1 for i in range(qty)]


def check_write(req, model, before):
    """A write that was answered normally wrote exactly its channels."""
    fc = req[0]
    regs0, coils0, _ = before
    if fc == 5:
        addr = _u16(req, 1)
        assert bits_of(model.bits[COILS], addr, 1) == [1 if _u16(req, 3) == 0xFF00 else 0]
        changed = {("c", addr)}
    elif fc == 15:
        first, qty = _u16(req, 1), _u16(req, 3)
        want = [(req[6 + (i >> 3)] >> (i & 7)) & 1 for i in range(qty)]
        assert bits_of(model.bits[COILS], first, qty) == want
        changed = {("c", first + i) for i in range(qty)}
    elif fc in (6, 16, 22, 23):
        if fc == 6:
            first, values = _u16(req, 1), [_u16(req, 3)]
        elif fc == 16:
            first, qty = _u16(req, 1), _u16(req, 3)
            values = [_u16(req, 6 + 2 * i) for i in range(qty)]
        elif fc == 22:
            first = _u16(req, 1)
            old = _u16(regs0, model.reg_offset(HOLDING, first))
            values = [(old & _u16(req, 3)) | (_u16(req, 5) & ~_u16(req, 3) & 0xFFFF)]
        else:
            first, qty = _u16(req, 5), _u16(req, 7)
            values = [_u16(req, 10 + 2 * i) for i in range(qty)]
        for i, v in enumerate(values):
            assert model.get_reg(HOLDING, first + i) == v, (req.hex(), first + i)
        changed = {("r", model.reg_offset(HOLDING, first + i)) for i in range(len(values))}
    else:
        return
    # Nothing else changed: every other register byte and coil is as before.
    for off in range(0, len(regs0), 2):
        if ("r", off) not in changed:
            assert model.regs[off:off + 2] == regs0[off:off + 2], "register at offset %d changed" % off
    for n in range(8 * len(coils0)):
        if ("c", n) not in changed:
            assert bits_of(model.bits[COILS], n, 1) == bits_of(coils0, n, 1), "coil %d changed" % n


def _boundary_requests():
    """Each function's quantity limits of the spec, at and one past them (and 0), at address 0:
    drawn by chance too rarely for the CI pass to be sure of them."""
    out = []
    for fc, limit in ((1, 0x7D0), (2, 0x7D0), (3, 0x7D), (4, 0x7D)):
        for qty in (0, 1, limit, limit + 1):
            out.append(struct.pack(">BHH", fc, 0, qty))
    for qty in (0, 0x7B0, 0x7B1):
        nbytes = (qty + 7) >> 3
        out.append(struct.pack(">BHHB", 15, 0, qty, nbytes) + bytes(nbytes))
    for qty in (0, 0x7B, 0x7C):
        out.append(struct.pack(">BHHB", 16, 0, qty, 2 * qty) + bytes(2 * qty))
    for rq, wq in ((0x7D, 1), (0x7E, 1), (0, 1), (1, 0x79), (1, 0x7A), (1, 0)):
        out.append(struct.pack(">BHHHHB", 23, 0, rq, 0, wq, 2 * wq) + bytes(2 * wq))
    return [r for r in out if len(r) <= 253]


def _at_the_limits(test):
    for req in _boundary_requests():
        test = example(req=req, which=0, seed=0, offsets=(0, 0))(test)
    return test


@_at_the_limits
@PROPERTY
@given(req=REQUESTS, which=st.integers(0, len(PRESENTS) - 1), seed=st.integers(0, 255),
       offsets=st.tuples(st.integers(0, 7), st.integers(0, 7)))
def test_engine_answers_every_request_well_formed(req, which, seed, offsets):
    model = fresh(PRESENTS[which], seed)
    engine = Engine(model, DeviceIdentification(pdu_cases.IDENTITY, 1))
    ro, wo = offsets
    buf = bytearray(ro) + bytearray(req) + bytearray(3)  # spare bytes past the PDU must not matter
    resp = bytearray(wo + 260)
    before = snapshot(model)
    r = engine.handle(buf, ro, len(req), resp, wo)
    out = resp[wo:]
    check_reply(bytes(req), out, r, before, snapshot(model))
    if not out[0] & 0x80:
        check_write(bytes(req), model, before)
    want = expected_code(bytes(req), PRESENTS[which] or FULL, before[0])
    if want is not None:
        got = out[1] if out[0] & 0x80 else 0
        assert got == want, "%s: got %s, the spec says %s" % (
            req.hex(), "exception %d" % got if got else "a normal reply", "exception %d" % want if want else
            "a normal reply")


# --- with write protection (mbnode.protect): the same invariants, and a write from a transport
# that touches a channel its source may not write is exception 02, whole, writing nothing.


@st.composite
def _protected_ranges(draw, anchors, limit):
    """0..3 [first, last] ranges that start or end near an anchor (the written span's ends, the
    map's edges), so that a range ending just before, at, or just after a write is common."""
    out = []
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.sampled_from(anchors)) + draw(st.integers(-2, 2))
        size = draw(st.one_of(st.integers(0, 3), st.integers(0, 0x200)))
        lo, hi = (at, at + size) if draw(st.booleans()) else (at - size, at)
        out.append([min(max(lo, 0), limit), min(max(hi, 0), limit)])
    return out


def _written(req):
    """(first, last) of what a write request writes, as far as its bytes say; None otherwise."""
    fc, n = req[0], len(req)
    if fc in (5, 6, 22) and n >= 3:
        return _u16(req, 1), _u16(req, 1)
    if fc in (15, 16) and n >= 5:
        return _u16(req, 1), _u16(req, 1) + max(_u16(req, 3), 1) - 1
    if fc == 23 and n >= 9:
        return _u16(req, 5), _u16(req, 5) + max(_u16(req, 7), 1) - 1
    return None


def section(read_only=((), ()), trusted_only=((), ()), rtu_trusted=False, mqtt_trusted=False):
    """A checked "protect" section: (coil ranges, holding register ranges) of each kind."""
    return {"read_only": {"coils": list(read_only[0]), "holding_registers": list(read_only[1])},
            "trusted_only": {"coils": list(trusted_only[0]), "holding_registers": list(trusted_only[1])},
            "trusted_clients": [], "rtu_trusted": rtu_trusted, "mqtt_trusted": mqtt_trusted}


@st.composite
def guarded(draw):
    """(a request, a "protect" section with ranges near what it writes)."""
    req = draw(st.one_of(valid_write(), valid_write(), REQUESTS))
    anchors = list(fuzzing.EDGES)
    span = _written(req)
    if span is not None:  # the written span's ends, as often as all the edges together
        anchors += list(span) * len(fuzzing.EDGES)
    coils, regs = _protected_ranges(anchors, 0x23F), _protected_ranges(anchors, 0xFFFF)
    return req, section((draw(coils), draw(regs)), (draw(coils), draw(regs)), draw(st.booleans()),
                        draw(st.booleans()))


@st.composite
def valid_write(draw):
    """A well-formed write in or near the map with values the onboard AO takes: what protection
    has to tell apart (REQUESTS alone are mostly refused for their form)."""
    fc = draw(st.sampled_from([5, 6, 15, 16, 22, 23]))
    edges = st.sampled_from(fuzzing.EDGES)
    if fc in (5, 15):
        first = draw(st.one_of(st.integers(0, 0x23F), edges))
    else:
        first = draw(st.one_of(st.integers(0, 0x13F), st.integers(0x1000, 0x17FF), edges))
    small = st.integers(0, 0x3FF)
    if fc == 5:
        return struct.pack(">BHH", 5, first, draw(st.sampled_from([0, 0xFF00])))
    if fc == 6:
        return struct.pack(">BHH", 6, first, draw(small))
    qty = draw(st.integers(1, 40))
    if fc == 15:
        return struct.pack(">BHHB", 15, first, qty, (qty + 7) // 8) + draw(st.binary(min_size=(qty + 7) // 8,
                                                                                      max_size=(qty + 7) // 8))
    values = b"".join(struct.pack(">H", draw(small)) for _ in range(qty))
    if fc == 16:
        return struct.pack(">BHHB", 16, first, qty, 2 * qty) + values
    if fc == 22:
        return struct.pack(">BHHH", 22, first, 0, draw(small))
    rfirst = draw(st.one_of(st.integers(0, 0x13F), edges))
    return struct.pack(">BHHHHB", 23, rfirst, draw(st.integers(1, 8)), first, qty, 2 * qty) + values


def refuses(sec, source, table, first, qty):
    """What docs/configuration.md ("protect") says, written out on its own: a write from a
    transport that overlaps a read_only range, or a trusted_only range unless its source is
    trusted (TCP from a trusted address; RTU, MQTT when rtu_trusted, mqtt_trusted)."""
    if source == 0:
        return False
    name = "coils" if table == COILS else "holding_registers"
    last = first + qty - 1
    overlaps = lambda ranges: any(lo <= last and first <= hi for lo, hi in ranges)  # noqa: E731
    trusted = source == 4 or (source == 1 and sec["rtu_trusted"]) or (source == 3 and sec["mqtt_trusted"])
    return overlaps(sec["read_only"][name]) or (not trusted and overlaps(sec["trusted_only"][name]))


def _at_the_edges(test):
    """Each rule at its edge and one past it, for every source: drawn too rarely by chance."""
    ro, tr = [[0x20, 0x2F]], [[0x30, 0x3F]]
    for fc, first in ((6, 0x1F), (6, 0x20), (6, 0x2F), (6, 0x30), (6, 0x3F), (6, 0x40), (5, 0x1F), (5, 0x20),
                      (5, 0x2F), (5, 0x30), (5, 0x3F), (5, 0x40)):
        req = struct.pack(">BHH", fc, first, 0xFF00 if fc == 5 else 1)
        for source in range(5):
            for trust in (False, True):
                sec = section((ro, ro), (tr, tr), trust, trust)
                test = example(case=(req, sec), which=0, seed=0, source=source)(test)
    for first, qty in ((0x10, 0x10), (0x10, 0x11), (0x30, 0x10), (0x40, 0x10), (0x2F, 2)):
        req = struct.pack(">BHHB", 16, first, qty, 2 * qty) + bytes(2 * qty)
        test = example(case=(req, section((ro, ro), (tr, tr))), which=0, seed=0, source=2)(test)
    return test


@_at_the_edges
@PROPERTY
@given(case=guarded(), which=st.integers(0, len(PRESENTS) - 1), seed=st.integers(0, 255),
       source=st.integers(0, 4))
def test_engine_with_a_guard_refuses_exactly_the_protected_writes(case, which, seed, source):
    req, sec = case
    model = fresh(PRESENTS[which], seed)
    engine = Engine(model, DeviceIdentification(pdu_cases.IDENTITY, 1))
    engine.guard = Guard(sec)
    resp = bytearray(260)
    before = snapshot(model)
    r = engine.handle(bytearray(req), 0, len(req), resp, 0, None, source)
    check_reply(bytes(req), resp, r, before, snapshot(model))
    if not resp[0] & 0x80:
        check_write(bytes(req), model, before)
    want = expected_code(bytes(req), PRESENTS[which] or FULL, before[0],
                         lambda table, first, qty: refuses(sec, source, table, first, qty))
    if want is not None:
        got = resp[1] if resp[0] & 0x80 else 0
        assert got == want, "%s from source %d under %r: got %s, expected %s" % (
            req.hex(), source, sec, "exception %d" % got if got else "a normal reply",
            "exception %d" % want if want else "a normal reply")
