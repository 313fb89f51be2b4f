"""The "retain" and "custom_block" sections of the configuration (docs/configuration.md):
their schemas and checks. mbnode.config imports this module only when a configuration has one
of them, and the firmware unloads it with config after start-up.

retain: memory positions kept over a restart (mbnode.retain). custom_block: the router's
file-backed block of holding registers (seeds/000, mbnode.customblock), placed by its first
register NUMBER as the router counts (number = address + 1) and refused where it would overlap
the channel map, the memory registers or the system registers.
"""

from mbnode.config import ConfigError, refused
from mbnode.datamodel import MEM_BASE, MEM_POSITIONS, MEM_REGS, REG_CHANNELS
from mbnode.rangeitem import bounds

MAX_RANGES = 32

# Holding register addresses the custom block may not overlap, and what they are.
TAKEN = (
    (0, REG_CHANNELS - 1, "the channel map"),
    (MEM_BASE, MEM_BASE + MEM_REGS - 1, "the memory registers"),
    (0x2000, 0x21FF, "the system registers (status and settings)"),
)


def _positions(key, v):
    """Memory position ranges [first, last] or "first-last" (1..1024), sorted and merged."""
    out = []
    ok = type(v) is list and len(v) <= MAX_RANGES
    for item in v if ok else ():
        first, last = bounds(item)
        if not 1 <= first <= last <= MEM_POSITIONS:
            ok = False
            break
        out.append((first, last))
    if not ok:
        raise refused(key, v, "allowed a list of at most %d memory position ranges [first, last] or "
                      "\"first-last\" inside 1..%d" % (MAX_RANGES, MEM_POSITIONS))
    merged = []
    for first, last in sorted(out):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1][1] = last
        else:
            merged.append([first, last])
    return merged


RETAIN = {
    "positions": ([], "call", _positions),
    "file": ("retain.dat", "text", 200),
    "every_s": (60, "int", 1, 86400),  # at most one save per this many seconds
}

CUSTOM_BLOCK = {
    "enabled": (True, "bool"),
    "file": ("regfile.dat", "text", 200),
    "first": (1025, "int", 1025, 65536),  # register NUMBER (address + 1), as the router counts
    "count": (128, "int", 1, 64512),
}


def check(cfg):
    """The rules between keys; ConfigError on one line."""
    r = cfg.get("retain")
    b = cfg.get("custom_block")
    if r is not None and not r["file"]:
        raise ConfigError("config: retain.file = \"\": allowed a file name (where the retained positions are saved)")
    if b is None:  # (a block turned off is checked too: turning it on must not meet a refusal)
        return
    if not b["file"]:
        raise ConfigError("config: custom_block.file = \"\": allowed a file name (where the block's registers live)")
    f = b["file"]
    if r is not None and (f == r["file"] or f == r["file"] + ".new" or r["file"] == f + ".new"):
        raise ConfigError("config: custom_block.file = \"%s\": retain.file uses it; allowed another file" % f)
    first = b["first"] - 1
    last = first + b["count"] - 1
    if last > 0xFFFF:
        raise ConfigError("config: custom_block.count = %d: allowed 1..%d with custom_block.first %d (the last "
                          "register is number 65536, address 0xFFFF)" % (b["count"], 0x10000 - first, b["first"]))
    for lo, hi, what in TAKEN:
        if first <= hi and lo <= last:
            raise ConfigError("config: custom_block.first = %d: its registers 0x%04X-0x%04X overlap %s 0x%04X-0x%04X; "
                              "allowed a block outside 0x0000-0x%04X, 0x%04X-0x%04X and 0x2000-0x21FF"
                              % (b["first"], first, last, what, lo, hi, REG_CHANNELS - 1, MEM_BASE,
                                 MEM_BASE + MEM_REGS - 1))
