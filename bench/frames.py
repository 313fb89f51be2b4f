"""Modbus TCP request frames for the bench, pre-built once, with the response length to expect.

Register values written stay <= 0x3FF: mbnode's onboard holding registers (0x0000-0x003F) are
10-bit analog outputs and reject more, and micropython-modbus packs registers as signed 16-bit.
"""

import struct

UNIT = 1


class Req:
    """One request ADU plus what its normal response looks like."""

    def __init__(self, name, pdu, resp_pdu_len, tid=1):
        self.name = name
        self.fc = pdu[0]
        self.adu = struct.pack(">HHHB", tid, 0, len(pdu) + 1, UNIT) + pdu
        # MBAP header + response PDU; None: variable, read by the MBAP length field.
        self.resp_len = None if resp_pdu_len is None else 7 + resp_pdu_len


def read_bits(fc, addr, qty):
    return Req("FC%02d x%d" % (fc, qty), struct.pack(">BHH", fc, addr, qty), 2 + (qty + 7) // 8)


def read_regs(fc, addr, qty):
    return Req("FC%02d x%d" % (fc, qty), struct.pack(">BHH", fc, addr, qty), 2 + 2 * qty)


def write_coil(addr, on):
    return Req("FC05", struct.pack(">BHH", 5, addr, 0xFF00 if on else 0), 5)


def write_reg(addr, value):
    return Req("FC06", struct.pack(">BHH", 6, addr, value), 5)


def write_coils(addr, qty, pattern=0xA5):
    nbytes = (qty + 7) // 8
    data = bytes([pattern] * nbytes)
    if qty & 7:
        data = data[:-1] + bytes([data[-1] & ((1 << (qty & 7)) - 1)])
    pdu = struct.pack(">BHHB", 15, addr, qty, nbytes) + data
    return Req("FC15 x%d" % qty, pdu, 5)


def write_regs(addr, qty, seed=0):
    values = [(seed + i * 7) & 0x3FF for i in range(qty)]
    pdu = struct.pack(">BHHB", 16, addr, qty, 2 * qty) + struct.pack(">%dH" % qty, *values)
    return Req("FC16 x%d" % qty, pdu, 5)


def mask_write(addr, and_mask, or_mask):
    return Req("FC22", struct.pack(">BHHH", 22, addr, and_mask, or_mask), 7)


def read_write_regs(raddr, rqty, waddr, wqty, seed=0):
    values = [(seed + i * 3) & 0x3FF for i in range(wqty)]
    pdu = struct.pack(">BHHHHB", 23, raddr, rqty, waddr, wqty, 2 * wqty)
    pdu += struct.pack(">%dH" % wqty, *values)
    return Req("FC23 r%d w%d" % (rqty, wqty), pdu, 2 + 2 * rqty)


def device_id(code=1, oid=0):
    # Response length depends on the identity strings: callers read it from the MBAP header.
    return Req("FC43/14 code %d" % code, bytes([43, 0x0E, code, oid]), None)


# ---- the request sets -------------------------------------------------------------------------

def throughput_set():
    """Section 1: the same four requests for every target."""
    return [read_regs(3, 0, 125), read_bits(1, 0, 64), write_regs(0, 50), write_regs(0, 123)]


def mbnode_mixed():
    """Section 2: every function code mbnode serves, max sizes included (its full map)."""
    return [
        read_bits(1, 0, 0x240), read_bits(2, 0, 0x240), read_bits(1, 0x41, 13),
        read_regs(3, 0, 125), read_regs(4, 0, 125), read_regs(3, 0x1000, 125), read_regs(4, 0x17FF - 124, 125),
        write_coil(3, True), write_coil(3, False), write_reg(0x50, 0xBEEF), write_reg(5, 0x3FF),
        write_coils(0, 0x240), write_coils(7, 9), write_regs(0, 123), write_regs(0x1000, 123, seed=5),
        mask_write(0x60, 0xF0F0, 0x0F0F), mask_write(2, 0x00FF, 0x0100),
        read_write_regs(0, 125, 0x40, 121), read_write_regs(0x1000, 10, 0x1010, 4),
        device_id(1), device_id(2), device_id(4, 1),
    ]


def umodbus_mixed():
    """Section 2, micropython-modbus: what it serves over TCP (no FC22/23/43, writes <= 57)."""
    return [
        read_bits(1, 0, 64), read_bits(2, 0, 64), read_regs(3, 0, 125), read_regs(4, 0, 125),
        write_coil(3, True), write_coil(3, False), write_reg(5, 0x3FF),
        write_coils(0, 64), write_regs(0, 57), write_regs(70, 20),
    ]
