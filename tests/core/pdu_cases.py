"""PDU engine test data, shared by CPython (pytest) and the MicroPython unix port; the runner and
the form of a case are in pdu_run.py (the write protection and register block cases, which need
the optional parts, are pdu_guard_cases.py: one table at a time fits an emulated MCU's heap).

Expected bytes are written out by hand from the Modbus spec and seeds/001, never produced by the
engine under test.
"""

from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT
import binascii

from pdu_run import IDENTITY, hx, run_all, run_case  # noqa: F401 - run_case, hx: the tests' too

def _ascii_hex(s):
    return binascii.hexlify(s.encode()).decode()


def _obj(oid, s):
    return "%02x%02x%s" % (oid, len(s), _ascii_hex(s))


ZEROS = "00"
LONG = dict((k, (k[0].upper() * 100)) for k in IDENTITY)  # seven 100-character objects

CASES = [
    # --- FC01 read coils
    ("fc01 one coil", [("bit", COILS, 0, 1)], [("01 0000 0001", "01 01 01")], {}),
    ("fc01 packing lsb first, pad zero, across onboard/extension",
     [("bit", COILS, 0x3B, 1), ("bit", COILS, 0x3D, 1), ("bit", COILS, 0x40, 1), ("bit", COILS, 0x45, 1)],
     [("01 003B 000A", "01 02 25 00")], {}),
    ("fc01 padding of a partial byte", [("bit", COILS, i, 1) for i in range(16)],
     [("01 0000 0003", "01 01 07"), ("01 0000 000B", "01 02 FF 07")], {}),
    ("fc01 quantity 0x240 at 0", [], [("01 0000 0240", "01 48" + ZEROS * 72)], {}),
    ("fc01 quantity 0 -> 03", [], [("01 0000 0000", "81 03")], {}),
    ("fc01 quantity 0x241 -> 03", [], [("01 0000 0241", "81 03")], {}),
    ("fc01 last coil 0x023F", [("bit", COILS, 0x23F, 1)], [("01 023F 0001", "01 01 01")], {}),
    ("fc01 0x0240 absent -> 02", [], [("01 0240 0001", "81 02")], {}),
    ("fc01 0x023F+2 crosses the end -> 02", [], [("01 023F 0002", "81 02")], {}),
    ("fc01 quantity checked before address", [], [("01 0300 0000", "81 03")], {}),
    ("fc01 wrong pdu length -> 03", [], [("01 0000 0001 00", "81 03"), ("01 0000", "81 03")], {}),
    # --- FC02 read discrete inputs
    ("fc02 reads discrete inputs, not coils",
     [("bit", DISCRETE_INPUTS, 1, 1), ("bit", COILS, 0, 1)], [("02 0000 0008", "02 01 02")], {}),
    ("fc02 unaligned start", [("bit", DISCRETE_INPUTS, 0x3F, 1), ("bit", DISCRETE_INPUTS, 0x47, 1)],
     [("02 003F 0009", "02 02 01 01")], {}),
    ("fc02 limits", [], [("02 0000 0241", "82 03"), ("02 0240 0001", "82 02"), ("02 0000 0000", "82 03")], {}),
    # --- FC03 / FC04 read registers
    ("fc03 125 registers", [("reg", HOLDING, 0, 0x1234), ("reg", HOLDING, 124, 0xABCD)],
     [("03 0000 007D", "03 FA 1234" + ZEROS * 246 + "ABCD")], {}),
    ("fc03 quantity 0x7E -> 03", [], [("03 0000 007E", "83 03"), ("03 0000 0000", "83 03")], {}),
    ("fc03 onboard/extension edge 0x003F/0x0040", [("reg", HOLDING, 0x3F, 1), ("reg", HOLDING, 0x40, 2)],
     [("03 003F 0002", "03 04 0001 0002")], {}),
    ("fc03 extension end 0x013F/0x0140", [("reg", HOLDING, 0x13F, 7)],
     [("03 013F 0001", "03 02 0007"), ("03 0140 0001", "83 02"), ("03 013F 0002", "83 02")], {}),
    ("fc03 memory edges 0x0FFF/0x1000 and 0x17FF/0x1800", [],
     [("03 0FFF 0001", "83 02"), ("03 0FFF 0002", "83 02"), ("03 1000 0001", "03 02 0000"),
      ("03 17FF 0001", "03 02 0000"), ("03 17FF 0002", "83 02"), ("03 1800 0001", "83 02")], {}),
    ("fc03 32-bit position 1 lower half first", [("u32", 1, 0x12345678)],
     [("03 1000 0002", "03 04 5678 1234")], {}),
    ("fc03 32-bit position 1024 signed", [("u32", 1024, -2)],
     [("03 17FE 0002", "03 04 FFFE FFFF")], {}),
    ("fc04 reads input registers", [("reg", INPUT, 0, 0x0102), ("reg", HOLDING, 0, 0x0304)],
     [("04 0000 0001", "04 02 0102")], {}),
    ("fc04 sees the same memory as fc03", [("u32", 2, 0xCAFEBABE)],
     [("04 1002 0002", "04 04 BABE CAFE")], {}),
    ("fc04 limits", [], [("04 0000 007E", "84 03"), ("04 0140 0001", "84 02"), ("04 1800 0001", "84 02"),
                         ("04 0000 007D", "04 FA" + ZEROS * 250)], {}),
    # --- FC05 write single coil
    ("fc05 on, off, read back", [],
     [("05 023F FF00", "05 023F FF00"), ("01 0238 0008", "01 01 80"), ("05 023F 0000", "05 023F 0000"),
      ("01 0238 0008", "01 01 00")], {}),
    ("fc05 extension channel past the seed's 0x013F", [], [("05 0200 FF00", "05 0200 FF00")], {}),
    ("fc05 value other than 0000/FF00 -> 03", [], [("05 0000 0001", "85 03"), ("05 0000 00FF", "85 03")], {}),
    ("fc05 absent -> 02; value checked first", [], [("05 0240 FF00", "85 02"), ("05 0240 1234", "85 03")], {}),
    # --- FC06 write single register
    ("fc06 onboard AO 10-bit", [],
     [("06 003F 03FF", "06 003F 03FF"), ("06 003F 0400", "86 03"), ("03 003F 0001", "03 02 03FF")], {}),
    ("fc06 extension and memory take 16 bits", [],
     [("06 0040 FFFF", "06 0040 FFFF"), ("06 1000 FFFF", "06 1000 FFFF"), ("04 1000 0001", "04 02 FFFF")], {}),
    ("fc06 absent -> 02 before the AO value check", [], [("06 0140 0400", "86 02"), ("06 0FFF 0000", "86 02")], {}),
    ("fc06 wrong length -> 03", [], [("06 0000 00", "86 03")], {}),
    # --- FC15 write multiple coils
    ("fc15 across onboard/extension", [],
     [("0F 003E 000A 02 FF 03", "0F 003E 000A"), ("01 0038 0018", "01 03 C0 FF 00")], {}),
    ("fc15 bits past the quantity are ignored", [],
     [("0F 0000 0003 01 FF", "0F 0000 0003"), ("01 0000 0008", "01 01 07")], {}),
    ("fc15 clears bits", [("bit", COILS, i, 1) for i in range(8)],
     [("0F 0002 0003 01 00", "0F 0002 0003"), ("01 0000 0008", "01 01 E3")], {}),
    ("fc15 quantity 0x240", [], [("0F 0000 0240 48" + "FF" * 72, "0F 0000 0240"), ("01 0238 0008", "01 01 FF")], {}),
    ("fc15 limits", [],
     [("0F 0000 0241 49" + "00" * 73, "8F 03"), ("0F 0000 0000 00", "8F 03"), ("0F 0000 0009 01 FF", "8F 03"),
      ("0F 0000 0008 02 FF FF", "8F 03"), ("0F 0000 0008 01", "8F 03"), ("0F 023F 0002 01 03", "8F 02"),
      ("0F 0000", "8F 03")], {}),
    # --- FC16 write multiple registers
    ("fc16 123 registers", [],
     [("10 0040 007B F6" + "0102" * 123, "10 0040 007B"), ("03 00BA 0001", "03 02 0102"), ("03 00BB 0001", "03 02 0000")], {}),
    ("fc16 limits", [],
     [("10 0040 007C F8" + "0000" * 124, "90 03"), ("10 0040 0000 00", "90 03"), ("10 0040 0002 02 0000", "90 03"),
      ("10 0040 0002 04 0000", "90 03"), ("10 0FFF 0001 02 0000", "90 02"), ("10 013F 0002 04 00000000", "90 02")], {}),
    ("fc16 onboard AO 10-bit, extension 16-bit in one request", [],
     [("10 003F 0002 04 03FF FFFF", "10 003F 0002"), ("10 003E 0002 04 0000 0400", "90 03"),
      ("03 003E 0003", "03 06 0000 03FF FFFF")], {}),
    ("fc16 memory 32-bit lower half first", [], [("10 1000 0002 04 5678 1234", "10 1000 0002")], {}),
    # --- FC22 mask write register
    ("fc22 spec example", [("reg", HOLDING, 0x1000, 0x0012)],
     [("16 1000 00F2 0025", "16 1000 00F2 0025"), ("03 1000 0001", "03 02 0017")], {}),
    ("fc22 onboard AO result above 0x3FF -> 03", [],
     [("16 0000 0000 0400", "96 03"), ("16 0000 0000 03FF", "16 0000 0000 03FF")], {}),
    ("fc22 limits", [], [("16 0140 FFFF 0000", "96 02"), ("16 0000 FFFF", "96 03")], {}),
    # --- FC23 read/write multiple registers
    ("fc23 write before read", [("reg", HOLDING, 0x1001, 0x1111)],
     [("17 1000 0002 1000 0001 02 ABCD", "17 04 ABCD 1111")], {}),
    ("fc23 read 0x7D, write 0x79", [],
     [("17 0000 007D 0040 0079 F2" + "0001" * 121, "17 FA" + "0000" * 64 + "0001" * 61)], {}),
    ("fc23 limits", [],
     [("17 0000 007E 0040 0001 02 0000", "97 03"), ("17 0000 0001 0040 007A F4" + "0000" * 122, "97 03"),
      ("17 0000 0000 0040 0001 02 0000", "97 03"), ("17 0000 0001 0040 0001 04 0000", "97 03"),
      ("17 0000 0001 0140 0001 02 0000", "97 02"), ("17 0140 0001 0000 0001 02 0000", "97 02"),
      ("17 0000 0001 0000 0001 02 0400", "97 03"), ("17 0000", "97 03")], {}),
    # --- FC43/14 read device identification
    ("fc43 basic stream", [],
     [("2B 0E 01 00", "2B 0E 01 82 00 00 03" + _obj(0, "mbnode") + _obj(1, "MBN-1") + _obj(2, "0.1.0"))], {}),
    ("fc43 regular stream skips absent objects", [],
     [("2B 0E 02 00", "2B 0E 02 82 00 00 05" + _obj(0, "mbnode") + _obj(1, "MBN-1") + _obj(2, "0.1.0")
       + _obj(4, "Sim") + _obj(5, "unix"))], {}),
    ("fc43 stream from object 1", [],
     [("2B 0E 01 01", "2B 0E 01 82 00 00 02" + _obj(1, "MBN-1") + _obj(2, "0.1.0"))], {}),
    ("fc43 unknown start id restarts at 0", [],
     [("2B 0E 01 50", "2B 0E 01 82 00 00 03" + _obj(0, "mbnode") + _obj(1, "MBN-1") + _obj(2, "0.1.0"))], {}),
    ("fc43 extended stream returns every object", [],
     [("2B 0E 03 04", "2B 0E 03 82 00 00 02" + _obj(4, "Sim") + _obj(5, "unix"))], {}),
    ("fc43 individual access", [],
     [("2B 0E 04 05", "2B 0E 04 82 00 00 01" + _obj(5, "unix")), ("2B 0E 04 03", "AB 02"),
      ("2B 0E 04 80", "AB 02")], {}),
    ("fc43 bad read code, length, MEI type", [],
     [("2B 0E 00 00", "AB 03"), ("2B 0E 05 00", "AB 03"), ("2B 0E 01", "AB 03"), ("2B 0E 01 00 00", "AB 03"),
      ("2B 0D 01 00", "AB 01")], {}),
    ("fc43 segmentation of long objects", [],
     [("2B 0E 02 00", "2B 0E 02 82 FF 02 02" + _obj(0, "V" * 100) + _obj(1, "P" * 100)),
      ("2B 0E 02 02", "2B 0E 02 82 FF 04 02" + _obj(2, "R" * 100) + _obj(3, "V" * 100)),
      ("2B 0E 02 04", "2B 0E 02 82 FF 06 02" + _obj(4, "P" * 100) + _obj(5, "M" * 100)),
      ("2B 0E 02 06", "2B 0E 02 82 00 00 01" + _obj(6, "U" * 100))], {"identity": LONG}),
    ("fc43 basic only -> conformity 0x81", [],
     [("2B 0E 02 00", "2B 0E 02 81 00 00 03" + _obj(0, "a") + _obj(1, "b") + _obj(2, "c"))],
     {"identity": {"vendor_name": "a", "product_code": "b", "revision": "c"}}),
    # --- FC08/00 and FC17 answer on every transport; the other serial-line functions are the
    # RTU link's (mbnode.diag), so the engine alone (= Modbus TCP) calls them unsupported.
    ("fc08/00 echo, fc17 report server id", [],
     [("08 0000 A537", "08 0000 A537"), ("08 0000", "08 0000"), ("08 0000 0102030405", "08 0000 0102030405"),
      ("08 00", "88 03"), ("11", "11 0A 01 FF" + _ascii_hex("sim-node")), ("11 00", "91 03")], {}),
    ("serial-line-only functions -> 01", [],
     [("07", "87 01"), ("08 0001 0000", "88 01"), ("08 000B 0000", "88 01"), ("08 0004 0000", "88 01"),
      ("0B", "8B 01"), ("0C", "8C 01")], {}),
    # --- unsupported functions and failures
    ("unsupported function codes -> 01", [],
     [("00", "80 01"), ("09 0000", "89 01"), ("0A", "8A 01"), ("14 00", "94 01"), ("18 0000", "98 01"),
      ("41 0000 0001", "C1 01"), ("7F", "FF 01")], {}),
    ("an output subscriber that raises -> 04, the others still called, the value stored", [],
     [("05 0000 FF00", "85 04"), ("10 0000 0001 02 0001", "90 04"), ("03 0000 0001", "03 02 0001"),
      ("01 0000 0001", "01 01 01")],
     {"failing_output": True, "outputs": [(COILS, 0, 1), (HOLDING, 0, 1)]}),
    ("output changes reach the subscribers: every write, memory too; no read, no refused write", [],
     [("05 0003 FF00", "05 0003 FF00"), ("0F 0010 000A 02 FF03", "0F 0010 000A"),
      ("06 0002 0123", "06 0002 0123"), ("10 0040 0002 04 00010002", "10 0040 0002"),
      ("10 1000 0002 04 00010002", "10 1000 0002"), ("16 0041 00F2 0025", "16 0041 00F2 0025"),
      ("17 0000 0001 0005 0001 02 0007", "17 02 0000"), ("01 0000 0008", "01 01 08"),
      ("03 0005 0001", "03 02 0007"), ("05 0240 FF00", "85 02"), ("06 0000 0400", "86 03"),
      ("05 0000 1234", "85 03"), ("10 0000 0001 02 0400", "90 03"), ("16 0000 0000 0400", "96 03")],
     {"outputs": [(COILS, 3, 1), (COILS, 0x10, 10), (HOLDING, 2, 1), (HOLDING, 0x40, 2), (HOLDING, 0x1000, 2),
                  (HOLDING, 0x41, 1), (HOLDING, 5, 1)]}),
    # --- configured presence
    ("configured presence", [],
     [("01 0000 0008", "01 01 00"), ("01 0000 0009", "81 02"), ("01 0040 0010", "01 02 0000"),
      ("01 0007 0002", "81 02"), ("03 0000 0004", "83 02"), ("03 1000 0001", "03 02 0000"),
      ("04 0000 0004", "04 08 0000000000000000"), ("04 0004 0001", "84 02"), ("02 0000 0001", "82 02")],
     {"present": [[(0, 7), (0x40, 0x4F)], [], [(0x1000, 0x17FF)], [(0, 3)]]}),
    ("adjacent configured ranges act as one", [],
     [("01 003F 0002", "01 01 00"), ("01 0000 0080", "01 10" + ZEROS * 16), ("01 0000 0081", "81 02")],
     {"present": [[(0, 0x3F), (0x40, 0x7F)], [(0, 0x23F)], [(0, 0x13F)], [(0, 0x13F)]]}),
]


def main():
    return run_all(CASES)


if __name__ == "__main__":
    import sys

    sys.exit(1 if main() else 0)
