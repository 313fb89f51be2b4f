"""Start-up only: the custom register block opened (mbnode.customblock) and retained memory
made, restored and subscribed (mbnode.retain); startup.build loads this module for that, and it
unloads itself when done.

The file's data (after mbnode.store's header): the number of ranges, each range's first and
last position (16 bits little-endian each), then each range's registers as the map holds them.
A save made under another configuration is restored where its positions are still retained.
"""

from mbnode.datamodel import HOLDING, MEM_BASE
from mbnode.fast import copy


def _put(b, o, v):
    b[o] = v & 0xFF
    b[o + 1] = v >> 8


def _u16(b, o):
    return b[o] | (b[o + 1] << 8)


def start(loop, engine, model, cfg, health):
    """Both parts as configured; words for the ready line."""
    words = []
    blk = cfg.get("custom_block")
    if blk and blk["enabled"]:
        from mbnode.customblock import start as block

        words = block(engine, cfg, health)
    if "retain" in cfg:
        _retain(loop, model, cfg, health, [health.link] if health.link else [], health.masters)
    import sys

    import mbnode

    del sys.modules["mbnode.retainboot"]
    delattr(mbnode, "retainboot")
    return words


def _retain(loop, model, cfg, health, links, masters):
    """The Retained part, its saved state restored (the one log line printed), following writes."""
    from mbnode import retain, store

    c = cfg["retain"]
    ranges = c["positions"]
    lims = []
    copies = []
    size = 2 + 4 * len(ranges)
    for first, last in ranges:
        lo = MEM_BASE + 2 * (first - 1)
        lims += [lo, lo + 2 * (last - first) + 1]
        copies += [model.reg_offset(HOLDING, lo), 4 * (last - first + 1)]
        size += 4 * (last - first + 1)
    snap = bytearray(size)
    _put(snap, 0, len(ranges))
    for i, (first, last) in enumerate(ranges):
        _put(snap, 2 + 4 * i, first)
        _put(snap, 4 + 4 * i, last)
    got = store.load(c["file"])
    data = got.data
    if data is not None:
        n = _u16(data, 0)
        o = 2 + 4 * n
        for i in range(n):
            first = _u16(data, 2 + 4 * i)
            last = _u16(data, 4 + 4 * i)
            if o + 4 * (last - first + 1) > len(data):
                break
            for lo, hi in ranges:  # the part still retained
                a = max(first, lo)
                b = min(last, hi)
                if a <= b:
                    r = MEM_BASE + 2 * (a - 1)
                    copy(model.regs, model.reg_offset(HOLDING, r), data, o + 4 * (a - first), 4 * (b - a + 1))
                    model.outputs_written(HOLDING, r, 2 * (b - a + 1))
            o += 4 * (last - first + 1)
    print("mbnode: retain " + got.describe())
    r = retain.ACTIVE = retain.Retained(model, c, health, links, masters, lims, copies, snap,
                                        2 + 4 * len(ranges), got.generation)
    health.retain = r
    model.subscribe(r.written)
    loop.add_timer(r)
    for link in links:
        link.after_reply = r.after_reply
