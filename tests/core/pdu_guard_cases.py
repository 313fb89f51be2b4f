"""PDU engine cases with the optional parts the Engine offers hooks for: write protection
(mbnode.protect's guard: every rule at its edge and one past it, per source) and a register block
outside the map (Engine.blocks, the seam of the system registers and the custom register block).
Run like pdu_cases.py (pdu_run.py: the form of a case); expected bytes written out by hand.
"""

from mbnode.datamodel import COILS, HOLDING, INPUT
from pdu_run import run_all

# The "protect" section the protect cases run with (checked form, mbnode.protectconfig).
PROTECT = {
    "read_only": {"coils": [[8, 15], [0x48, 0x4F]],
                  "holding_registers": [[0x10, 0x11], [0x1000, 0x1003], [0x2100, 0x2100]]},
    "trusted_only": {"coils": [[0x20, 0x27]], "holding_registers": [[0x20, 0x2F], [0x48, 0x4F], [0x2101, 0x2102]]},
    "trusted_clients": ["127.0.0.1"], "rtu_trusted": False, "mqtt_trusted": True,
}


class RamBlock:
    """A register block outside the map (Engine.blocks), holding and input registers
    first..first + count - 1 in RAM; a write of 0xFFFF is refused with exception 03."""

    def __init__(self, first, count):
        self.first = first
        self.count = count
        self.regs = bytearray(2 * count)

    def holds(self, table, first, count):
        return (table == HOLDING or table == INPUT) and first >= self.first and \
            first + count <= self.first + self.count

    def read(self, table, first, count, buf, off):
        o = 2 * (first - self.first)
        for i in range(2 * count):
            buf[off + i] = self.regs[o + i]
        return 0

    def write(self, first, count, src, so, source):
        for i in range(count):
            if src[so + 2 * i] == 0xFF and src[so + 2 * i + 1] == 0xFF:
                return -3
        o = 2 * (first - self.first)
        for i in range(2 * count):
            self.regs[o + i] = src[so + i]
        return 0


class OfflineModules:
    """Engine.remote (mbnode.extension's hooks) with every extension channel, 0x0040 on, on a
    module that is not online: a read or a write that reaches it is answered 0x0B."""

    def claims(self, table, first, count):
        return first + count > 0x40

    def down(self, table, first, count):
        return first + count > 0x40

    def write(self, table, first, count, src, so, req, ro, waiter):
        return -0x0B

    def forget(self, waiter):
        pass


def ram_block():
    """The block the block cases run with: 0x2100-0x210F."""
    return RamBlock(0x2100, 16)


CASES = [
    # --- write protection (mbnode.protect; PROTECT above): every rule at its edge and one past it,
    # per source (0 local, 1 RTU, 2 TCP, 3 MQTT, 4 trusted TCP). A refused write writes nothing
    # and reaches no output subscriber; reads of protected channels still work.
    ("protect: read-only coils, every source", [],
     [("05 0007 FF00", "05 0007 FF00", 2), ("05 0008 FF00", "85 02", 2), ("05 000F FF00", "85 02", 4),
      ("05 0010 FF00", "05 0010 FF00", 2), ("05 0008 FF00", "85 02", 1), ("05 0008 FF00", "85 02", 3),
      ("05 0008 FF00", "05 0008 FF00", 0), ("0F 0000 0008 01 FF", "0F 0000 0008", 2),
      ("0F 0000 0009 02 0000", "8F 02", 2), ("0F 000F 0002 01 03", "8F 02", 4),
      ("0F 0010 0010 02 FFFF", "0F 0010 0010", 2), ("01 0000 0018", "01 03 FF 01 FF", 2)],
     {"protect": PROTECT, "outputs": [(COILS, 7, 1), (COILS, 0x10, 1), (COILS, 8, 1), (COILS, 0, 8),
                                        (COILS, 0x10, 16)]}),
    ("protect: trusted-only coils, trusted sources write (trusted TCP, MQTT here), the others 02", [],
     [("05 001F FF00", "05 001F FF00", 2), ("05 0020 FF00", "85 02", 2), ("05 0027 FF00", "85 02", 1),
      ("05 0028 FF00", "05 0028 FF00", 2), ("05 0020 FF00", "05 0020 FF00", 4), ("05 0027 FF00", "05 0027 FF00", 3),
      ("05 0021 FF00", "05 0021 FF00", 0), ("0F 0018 0008 01 FF", "0F 0018 0008", 2),
      ("0F 0018 0009 02 FF01", "8F 02", 2), ("0F 0018 0009 02 FF01", "8F 02", 1),
      ("0F 0018 0010 02 FFFF", "0F 0018 0010", 4), ("0F 0008 0001 01 01", "8F 02", 4),
      ("01 0018 0011", "01 03 FF FF 01", 1)],
     {"protect": PROTECT, "outputs": [(COILS, 0x1F, 1), (COILS, 0x28, 1), (COILS, 0x20, 1), (COILS, 0x27, 1),
                                        (COILS, 0x21, 1), (COILS, 0x18, 8), (COILS, 0x18, 16)]}),
    ("protect: holding registers, every write function at the edges", [],
     [("06 000F 0001", "06 000F 0001", 2), ("06 0010 0001", "86 02", 4), ("06 0011 0001", "86 02", 2),
      ("06 0012 0001", "06 0012 0001", 2), ("10 000E 0002 04 00020003", "10 000E 0002", 2),
      ("10 000E 0003 06 000200030004", "90 02", 4), ("10 0011 0002 04 00050006", "90 02", 2),
      ("16 0010 0000 0001", "96 02", 2), ("16 0012 0000 0007", "16 0012 0000 0007", 2),
      ("17 0010 0002 0011 0001 02 0009", "97 02", 4),
      ("17 000F 0004 000F 0001 02 0009", "17 08 0009 0000 0000 0007", 2),
      ("06 001F 0001", "06 001F 0001", 2), ("06 0020 0001", "86 02", 2), ("06 002F 0001", "86 02", 1),
      ("06 0030 0001", "06 0030 0001", 2), ("06 0020 0002", "06 0020 0002", 4),
      ("10 002E 0002 04 00030004", "10 002E 0002", 3), ("16 002F 0000 0001", "96 02", 1),
      ("17 0000 0001 001F 0002 04 00010002", "97 02", 2), ("06 0010 0003", "06 0010 0003", 0),
      ("03 0010 0002", "03 04 0003 0000", 2), ("03 001F 0002", "03 04 0001 0002", 1)],
     {"protect": PROTECT, "outputs": [(HOLDING, 0xF, 1), (HOLDING, 0x12, 1), (HOLDING, 0xE, 2), (HOLDING, 0x12, 1),
                                        (HOLDING, 0xF, 1), (HOLDING, 0x1F, 1), (HOLDING, 0x30, 1), (HOLDING, 0x20, 1),
                                        (HOLDING, 0x2E, 2), (HOLDING, 0x10, 1)]}),
    ("protect: memory positions 1-2 read-only", [("u32", 1, 0x12345678)],
     [("10 1000 0002 04 00010002", "90 02", 4), ("06 1003 0001", "86 02", 2), ("06 1004 0001", "06 1004 0001", 2),
      ("10 1002 0004 08 0001000200030004", "90 02", 2), ("16 1001 0000 0000", "96 02", 3),
      ("04 1000 0003", "04 06 5678 1234 0000", 2), ("03 1003 0002", "03 04 0000 0001", 2)],
     {"protect": PROTECT, "outputs": [(HOLDING, 0x1004, 1)]}),
    ("protect: quantity and value (03) before the address (02), the address before the onboard AO limit", [],
     [("05 0008 1234", "85 03", 2), ("06 0010 0400", "86 02", 2), ("06 0020 0400", "86 02", 1),
      ("06 0020 0400", "86 03", 4), ("10 0010 0001 03 0001", "90 03", 2), ("0F 0008 0000 00", "8F 03", 2),
      ("06 0140 0001", "86 02", 4)],
     {"protect": PROTECT, "outputs": []}),
    ("protect: extension modules' outputs are checked before the write goes out (0x0B: it went out)", [],
     [("05 0048 FF00", "85 02", 4), ("05 0047 FF00", "85 0B", 2), ("05 0050 FF00", "85 0B", 1),
      ("0F 0040 0009 02 FF01", "8F 02", 2), ("0F 0040 0008 01 FF", "8F 0B", 2), ("06 0048 0001", "86 02", 2),
      ("06 0048 0001", "86 0B", 4), ("06 0048 0001", "86 0B", 3), ("10 0047 0002 04 00010002", "90 02", 1),
      ("10 0046 0002 04 00010002", "90 0B", 1), ("16 004F 0000 0001", "96 02", 1), ("16 0050 0000 0001", "96 0B", 1),
      ("17 0000 0001 0048 0001 02 0001", "97 02", 2), ("01 0048 0001", "81 0B", 2), ("03 0048 0001", "83 0B", 2)],
     {"protect": PROTECT, "remote": OfflineModules, "outputs": []}),
    # --- a register block outside the map (Engine.blocks; RamBlock above)
    ("block: read and written with FC03/04/06/16/22/23, no AO limit, nothing past its end", [],
     [("03 2100 0002", "03 04 0000 0000", 2), ("06 2100 1234", "06 2100 1234", 2), ("04 2100 0001", "04 02 1234"),
      ("10 2101 0002 04 ABCD0001", "10 2101 0002", 1), ("16 2101 FF00 0012", "16 2101 FF00 0012", 3),
      ("17 2100 0003 2103 0001 02 0077", "17 06 1234 AB12 0001", 2),
      ("17 0000 0001 2103 0001 02 0078", "17 02 0000", 2), ("17 2103 0001 0000 0001 02 0005", "17 02 0078", 2),
      ("03 210F 0002", "83 02"), ("10 210F 0002 04 00010002", "90 02", 2), ("03 2110 0001", "83 02"),
      ("06 2105 FFFF", "86 03", 2), ("16 2100 0000 FFFF", "96 03", 2), ("03 2105 0001", "03 02 0000"),
      ("17 2100 0001 2104 0002 04 0001FFFF", "97 03", 2), ("03 2100 0001", "03 02 1234"),
      ("03 0140 0001", "83 02"), ("06 2110 0001", "86 02", 2)],
     {"block": ram_block, "outputs": [(HOLDING, 0, 1)]}),
    ("block: protected like the map", [],
     [("06 2100 0001", "86 02", 4), ("06 2101 0001", "86 02", 2), ("06 2101 0001", "06 2101 0001", 4),
      ("10 2102 0002 04 00010002", "90 02", 1), ("10 2103 0002 04 00010002", "10 2103 0002", 1),
      ("16 2100 0000 0001", "96 02", 4), ("17 2100 0001 2102 0001 02 0001", "97 02", 2),
      ("06 2100 0009", "06 2100 0009", 0), ("03 2100 0004", "03 08 0009 0001 0000 0001", 2)],
     {"protect": PROTECT, "block": ram_block, "outputs": []}),
]


def main():
    return run_all(CASES)


if __name__ == "__main__":
    import sys

    sys.exit(1 if main() else 0)
