"""One range as the configuration writes it, in every section that takes ranges (channels.*,
protect.*, retain.positions): [first, last] with two integers, or "first-last" with decimal or
0x hex numbers. Each section keeps its own rule of where a range may lie and its own refusal.

A module of its own so that mbnode.config stays small to compile (from source on the unix port
at a 64K heap); loaded by the checks that read ranges and unloaded with them (startup.load_config).
"""

from mbnode.config import _number


def bounds(item):
    """(first, last) of one range item as written, not yet checked for order or place; a
    number that is no number is -1, an item of neither form (-1, -1)."""
    if type(item) is list and len(item) == 2 and type(item[0]) is int and type(item[1]) is int:
        return item[0], item[1]
    if type(item) is str and item.count("-") == 1:
        a, b = item.split("-")
        return _number(a.strip(), True), _number(b.strip(), True)
    return -1, -1
