"""The slave's data: four Modbus tables in preallocated buffers, plus which channels exist.

Bits are kept as bitmaps (bit n = byte n>>3, bit n&7), registers in wire format (big-endian), so
reads and writes are plain copies between a request/response buffer and a table. All registers
share one buffer: holding 0x0000-0x013F, then input 0x0000-0x013F, then the 1024 32-bit memory
positions (0x1000-0x17FF, seen both as holding and as input registers), each stored lower 16-bit
half first (seeds/001; mbnode.memory32 has the positions' rules). One buffer means a register is
found by an integer offset alone.
"""

from mbnode import fast

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

COILS = const(0)
DISCRETE_INPUTS = const(1)
HOLDING = const(2)
INPUT = const(3)

# The channel map (every address any configuration may make present, per table: mbnode.typenames.MAP).
BIT_CHANNELS = const(0x240)  # 0x0000-0x003F onboard, 0x0040-0x023F extension
REG_CHANNELS = const(0x140)  # 0x0000-0x003F onboard, 0x0040-0x013F extension
ONBOARD = const(0x40)  # onboard channels per table; onboard AO is 10-bit
AO_MAX = const(0x3FF)
MEM_BASE = const(0x1000)
MEM_REGS = const(0x800)  # 0x1000-0x17FF
MEM_POSITIONS = const(0x400)  # 1024 32-bit positions

_INPUT_OFF = const(2 * REG_CHANNELS)
_MEM_OFF = const(4 * REG_CHANNELS)


def _merge(ranges):
    # Sorted, merged [first, last] pairs flattened into one list (kept as a tuple: smaller): a
    # request is valid when it fits inside one pair, and adjacent configured ranges must not
    # split a valid request.
    flat = []
    for first, last in sorted(ranges):
        if flat and first <= flat[-1] + 1:
            if last > flat[-1]:
                flat[-1] = last
        else:
            flat.append(first)
            flat.append(last)
    return flat


class DataModel:
    def __init__(self, present=None):
        """present: see set_present; None = the whole map (mbnode.typenames.MAP)."""
        self.regs = bytearray(_MEM_OFF + 4 * MEM_POSITIONS)
        self.bits = (bytearray(BIT_CHANNELS // 8 + 1), bytearray(BIT_CHANNELS // 8 + 1))
        if present is None:
            from mbnode.typenames import MAP as present  # start-up only: unloaded again by app.run
        self.set_present(present)
        self.subscribers = []  # see subscribe()

    # Output changes: one dispatcher for every part that follows them.

    def subscribe(self, fn):
        """Call fn(table, first, count) after every write of outputs from now on: COILS, or
        HOLDING (onboard and extension AO, and memory positions as their register addresses
        0x1000-0x17FF). Parts subscribe at start-up (pins, and whatever else follows outputs);
        they are called in subscription order."""
        self.subscribers.append(fn)

    def unsubscribe(self, fn):
        self.subscribers.remove(fn)

    def outputs_written(self, table, first, count):
        """Tell every subscriber that table[first:first + count] was written (the values are in
        the model already). Every write of a master goes through here (the Engine calls it for
        FC05/06/15/16/22/23, whatever transport or MQTT brought it; the simulator's control
        channel calls it for its `set` of outputs and memory). A subscriber that raises
        does not stop the others: its error is printed on one line and the rest still run.
        False when one raised (the Engine then answers exception 04). Allocates nothing unless
        one raises."""
        ok = True
        for fn in self.subscribers:
            try:
                fn(table, first, count)
            except Exception as e:  # noqa: BLE001 - the others and the reply still come
                ok = False
                try:
                    print("mbnode: error in output subscriber %s: %r" % (getattr(fn, "__name__", "?"), e))
                except MemoryError:
                    pass  # no room to say it: the reply (exception 04) still says something failed
        return ok

    def set_present(self, present):
        """present: per table (COILS..INPUT) a list of (first, last) channel ranges inside
        mbnode.typenames.MAP (the configuration checks that)."""
        self.present = tuple(tuple(_merge(r)) for r in present)

    def is_present(self, table, first, count):
        ranges = self.present[table]
        last = first + count - 1
        i = 0
        n = len(ranges)
        while i < n:
            if first >= ranges[i] and last <= ranges[i + 1]:
                return True
            i += 2
        return False

    def reg_offset(self, table, address):
        """Offset in self.regs of register `address` of HOLDING or INPUT."""
        if address >= MEM_BASE:
            return _MEM_OFF + 2 * (address - MEM_BASE)
        return 2 * address if table == HOLDING else _INPUT_OFF + 2 * address

    # Field-side and firmware access (not the Modbus hot path).

    def get_bit(self, table, n):
        return (self.bits[table][n >> 3] >> (n & 7)) & 1

    def set_bit(self, table, n, value):
        b = self.bits[table]
        if value:
            b[n >> 3] |= 1 << (n & 7)
        else:
            b[n >> 3] &= 0xFF ^ (1 << (n & 7))

    def get_reg(self, table, address):
        o = self.reg_offset(table, address)
        return (self.regs[o] << 8) | self.regs[o + 1]

    def set_reg(self, table, address, value):
        o = self.reg_offset(table, address)
        self.regs[o] = (value >> 8) & 0xFF
        self.regs[o + 1] = value & 0xFF

    def put(self, table, first, src, so, count):
        """Inputs from the field side, allocation-free: DISCRETE_INPUTS bits from bits packed LSB
        first at src[so:] (as FC02 answers them), or INPUT registers from wire-format bytes
        (values polled from another device). Outputs (coils, holding registers, memory) are
        written through the Engine instead, so that their subscribers hear of it."""
        if table == DISCRETE_INPUTS:
            fast.put_bits(self.bits[table], first, src, so, count)
        else:
            fast.copy(self.regs, self.reg_offset(table, first), src, so, 2 * count)
