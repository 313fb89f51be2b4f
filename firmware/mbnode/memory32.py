"""The 32-bit memory positions 1..1024 (mbnode.datamodel's holding registers 0x1000-0x17FF): where
a position is, how a value splits into its two registers (lower half first, seeds/001) and back,
and reading or writing one in a DataModel.

No part uses it while the device serves (they keep register addresses and offsets): the
configuration checks, start-up (the MQTT points, the poller's requests), the simulator's
control channel and the host tools do. START_ONLY = True: app.run unloads it once the parts are
built (its constants, the 32-bit limits among them, go only with it); whoever needs it later
imports it again.
"""

from mbnode.datamodel import HOLDING, MEM_BASE, MEM_POSITIONS

START_ONLY = True


def mem_register(position):
    """Register address of the lower half of 32-bit memory position 1..1024."""
    if not 1 <= position <= MEM_POSITIONS:
        raise ValueError("memory position %r: allowed 1..%d" % (position, MEM_POSITIONS))
    return MEM_BASE + 2 * (position - 1)


def u32_to_words(value):
    """32-bit value (signed or unsigned) -> (lower half, upper half) as register values."""
    if not -0x80000000 <= value <= 0xFFFFFFFF:
        raise ValueError("value %r: allowed -2147483648..4294967295" % (value,))
    value &= 0xFFFFFFFF
    return value & 0xFFFF, value >> 16


def words_to_u32(low, high, signed=False):
    """(lower half, upper half) register values -> 32-bit number."""
    value = (high << 16) | low
    if signed and value & 0x80000000:
        value -= 0x100000000
    return value


def get_u32(model, position):
    """The unsigned 32-bit number at memory position 1..1024 of DataModel `model`."""
    a = mem_register(position)
    return words_to_u32(model.get_reg(HOLDING, a), model.get_reg(HOLDING, a + 1))


def get_i32(model, position):
    """The same, signed."""
    a = mem_register(position)
    return words_to_u32(model.get_reg(HOLDING, a), model.get_reg(HOLDING, a + 1), True)


def set_u32(model, position, value):
    """Store a 32-bit number (signed or unsigned) at memory position 1..1024 (no output
    subscriber hears of it: that is the caller's, DataModel.outputs_written)."""
    a = mem_register(position)
    low, high = u32_to_words(value)
    model.set_reg(HOLDING, a, low)
    model.set_reg(HOLDING, a + 1, high)
