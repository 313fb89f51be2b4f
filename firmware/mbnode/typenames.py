"""The data types and the local map's tables by the names the configuration uses, and setup(),
which gives an object the layout of a type (mbnode.datatypes' module docstring has the types).

Start-up and the configuration checks only: the MQTT points, the poller's requests and their
checks read it while they are built; at run time a part has its layout in its own attributes
and mbnode.datatypes does the rest. START_ONLY = True: app.run unloads the whole module once the
parts are built (its tables are constants of the module, which go only with it).
"""

from mbnode.datamodel import BIT_CHANNELS, COILS, DISCRETE_INPUTS, HOLDING, INPUT, MEM_BASE, MEM_REGS, REG_CHANNELS

START_ONLY = True

# The channels section's names of the tables COILS..INPUT (mbnode.datamodel), in that order.
TABLE_NAMES = ("coils", "discrete_inputs", "holding_registers", "input_registers")

# The channel map: every address any configuration may make present, per table (COILS..INPUT),
# as (first, last) ranges; the data model's buffers hold them all (mbnode.datamodel).
MAP = (
    ((0, BIT_CHANNELS - 1),),
    ((0, BIT_CHANNELS - 1),),
    ((0, REG_CHANNELS - 1), (MEM_BASE, MEM_BASE + MEM_REGS - 1)),
    ((0, REG_CHANNELS - 1), (MEM_BASE, MEM_BASE + MEM_REGS - 1)),
)

# type -> (struct format of one value, its bytes); None: bool and text.
TYPES = {
    "bool": (None, 0),
    "int8": (">b", 1),
    "uint8": (">B", 1),
    "int16": (">h", 2),
    "uint16": (">H", 2),
    "int32": (">i", 4),
    "uint32": (">I", 4),
    "float32": (">f", 4),
    "int64": (">q", 8),
    "uint64": (">Q", 8),
    "float64": (">d", 8),
    "memory32": (">I", 4),
    "ascii": (None, 0),
    "hex": (None, 0),
}
TEXT = ("ascii", "hex")

# Where typed values live in the local map, by the names the configuration uses: table name ->
# (datamodel table, an MQTT point's default type, the types a point there takes (None: every
# register type), what its channels are called). "memory" positions are holding registers.
# The MQTT points (mbnode.mqtt.points, pointsconfig) and the poller's destinations (pollconfig) use it.
TABLES = {
    "coil": (COILS, "bool", ("bool",), "a coil"),
    "discrete": (DISCRETE_INPUTS, "bool", ("bool",), "a discrete input"),
    "input": (INPUT, "uint16", None, "input registers"),
    "holding": (HOLDING, "uint16", None, "holding registers"),
    "memory": (HOLDING, "memory32", ("memory32",), "a memory position"),
}


def setup(obj, t, byte_order="BE", word_order="BE", signed=False, count=0):
    """Give obj the layout of type t (mbnode.datatypes); count: registers of a text.
    Six attributes only: a device may hold 64 points (each attribute more is a bigger
    instance dictionary for every one of them)."""
    fmt, size = TYPES[t]
    obj.type = t
    obj.fmt = ">i" if signed and t == "memory32" else fmt
    obj.width = count if t in TEXT else max(1, size >> 1)
    obj.bswap = 1 if byte_order == "LE" else 0  # an index offset in datatypes.reorder()
    obj.wswap = word_order == "LE" or t == "memory32"
    obj.numeric = fmt is not None
