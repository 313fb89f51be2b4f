"""PDU engine test data, shared by CPython (pytest) and the MicroPython unix port.

A case: (name, setup, steps, options). setup is a list of field-side writes done on a fresh data
model before the steps: ("bit", table, address, value) | ("reg", table, address, value) |
("u32", position, value). steps: (request PDU hex, expected response PDU hex[, source]); spaces in
hex are ignored; source is the Engine's (mbnode.pdu SOURCE_*: 0 local, the default, 1 RTU, 2 TCP,
3 MQTT, 4 TCP from a trusted address). options: {"present": per-table ranges, "identity": dict,
"failing_output": True, "outputs": [(table, first, count), ...], "protect": a checked "protect"
section (the Engine's guard is mbnode.protect.Guard of it), "block": (first, count): a register
block outside the map (RamBlock) on the Engine}. Every case runs with two recording output subscribers
(and, with failing_output, one that raises between them): each output change must reach both,
in subscription order; "outputs" lists the changes the steps must make, in order.
Expected bytes are written out by hand from the Modbus spec and seeds/001, never produced by the
engine under test.
"""

import binascii
import gc

from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, DataModel
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine

IDENTITY = {
    "vendor_name": "mbnode",
    "product_code": "MBN-1",
    "revision": "0.1.0",
    "vendor_url": "",
    "product_name": "Sim",
    "model_name": "unix",
    "user_application_name": "",
    "device_name": "sim-node",
}


def hx(text):
    return binascii.unhexlify(text.replace(" ", ""))


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
    # --- write protection (mbnode.protect; PROTECT below): every rule at its edge and one past it,
    # per source (0 local, 1 RTU, 2 TCP, 3 MQTT, 4 trusted TCP). A refused write writes nothing
    # and reaches no output subscriber; reads of protected channels still work.
    ("protect: read-only coils, every source",  [],
     [("05 0007 FF00", "05 0007 FF00", 2), ("05 0008 FF00", "85 02", 2), ("05 000F FF00", "85 02", 4),
      ("05 0010 FF00", "05 0010 FF00", 2), ("05 0008 FF00", "85 02", 1), ("05 0008 FF00", "85 02", 3),
      ("05 0008 FF00", "05 0008 FF00", 0), ("0F 0000 0008 01 FF", "0F 0000 0008", 2),
      ("0F 0000 0009 02 0000", "8F 02", 2), ("0F 000F 0002 01 03", "8F 02", 4),
      ("0F 0010 0010 02 FFFF", "0F 0010 0010", 2), ("01 0000 0018", "01 03 FF 01 FF", 2)],
     {"protect": True, "outputs": [(COILS, 7, 1), (COILS, 0x10, 1), (COILS, 8, 1), (COILS, 0, 8),
                                        (COILS, 0x10, 16)]}),
    ("protect: trusted-only coils, trusted sources write (trusted TCP, MQTT here), the others 02", [],
     [("05 001F FF00", "05 001F FF00", 2), ("05 0020 FF00", "85 02", 2), ("05 0027 FF00", "85 02", 1),
      ("05 0028 FF00", "05 0028 FF00", 2), ("05 0020 FF00", "05 0020 FF00", 4), ("05 0027 FF00", "05 0027 FF00", 3),
      ("05 0021 FF00", "05 0021 FF00", 0), ("0F 0018 0008 01 FF", "0F 0018 0008", 2),
      ("0F 0018 0009 02 FF01", "8F 02", 2), ("0F 0018 0009 02 FF01", "8F 02", 1),
      ("0F 0018 0010 02 FFFF", "0F 0018 0010", 4), ("0F 0008 0001 01 01", "8F 02", 4),
      ("01 0018 0011", "01 03 FF FF 01", 1)],
     {"protect": True, "outputs": [(COILS, 0x1F, 1), (COILS, 0x28, 1), (COILS, 0x20, 1), (COILS, 0x27, 1),
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
     {"protect": True, "outputs": [(HOLDING, 0xF, 1), (HOLDING, 0x12, 1), (HOLDING, 0xE, 2), (HOLDING, 0x12, 1),
                                        (HOLDING, 0xF, 1), (HOLDING, 0x1F, 1), (HOLDING, 0x30, 1), (HOLDING, 0x20, 1),
                                        (HOLDING, 0x2E, 2), (HOLDING, 0x10, 1)]}),
    ("protect: memory positions 1-2 read-only", [("u32", 1, 0x12345678)],
     [("10 1000 0002 04 00010002", "90 02", 4), ("06 1003 0001", "86 02", 2), ("06 1004 0001", "06 1004 0001", 2),
      ("10 1002 0004 08 0001000200030004", "90 02", 2), ("16 1001 0000 0000", "96 02", 3),
      ("04 1000 0003", "04 06 5678 1234 0000", 2), ("03 1003 0002", "03 04 0000 0001", 2)],
     {"protect": True, "outputs": [(HOLDING, 0x1004, 1)]}),
    ("protect: quantity and value (03) before the address (02), the address before the onboard AO limit", [],
     [("05 0008 1234", "85 03", 2), ("06 0010 0400", "86 02", 2), ("06 0020 0400", "86 02", 1),
      ("06 0020 0400", "86 03", 4), ("10 0010 0001 03 0001", "90 03", 2), ("0F 0008 0000 00", "8F 03", 2),
      ("06 0140 0001", "86 02", 4)],
     {"protect": True, "outputs": []}),
    # --- a register block outside the map (Engine.blocks; RamBlock below)
    ("block: read and written with FC03/04/06/16/22/23, no AO limit, nothing past its end", [],
     [("03 2100 0002", "03 04 0000 0000", 2), ("06 2100 1234", "06 2100 1234", 2), ("04 2100 0001", "04 02 1234"),
      ("10 2101 0002 04 ABCD0001", "10 2101 0002", 1), ("16 2101 FF00 0012", "16 2101 FF00 0012", 3),
      ("17 2100 0003 2103 0001 02 0077", "17 06 1234 AB12 0001", 2),
      ("17 0000 0001 2103 0001 02 0078", "17 02 0000", 2), ("17 2103 0001 0000 0001 02 0005", "17 02 0078", 2),
      ("03 210F 0002", "83 02"), ("10 210F 0002 04 00010002", "90 02", 2), ("03 2110 0001", "83 02"),
      ("06 2105 FFFF", "86 03", 2), ("16 2100 0000 FFFF", "96 03", 2), ("03 2105 0001", "03 02 0000"),
      ("17 2100 0001 2104 0002 04 0001FFFF", "97 03", 2), ("03 2100 0001", "03 02 1234"),
      ("03 0140 0001", "83 02"), ("06 2110 0001", "86 02", 2)],
     {"block": (0x2100, 16), "outputs": [(HOLDING, 0, 1)]}),
    ("block: protected like the map", [],
     [("06 2100 0001", "86 02", 4), ("06 2101 0001", "86 02", 2), ("06 2101 0001", "06 2101 0001", 4),
      ("10 2102 0002 04 00010002", "90 02", 1), ("10 2103 0002 04 00010002", "10 2103 0002", 1),
      ("16 2100 0000 0001", "96 02", 4), ("17 2100 0001 2102 0001 02 0001", "97 02", 2),
      ("06 2100 0009", "06 2100 0009", 0), ("03 2100 0004", "03 08 0009 0001 0000 0001", 2)],
     {"protect": True, "block": (0x2100, 16), "outputs": []}),
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


# The "protect" section the protect cases run with (checked form, mbnode.protectconfig).
PROTECT = {
    "read_only": {"coils": [[8, 15]], "holding_registers": [[0x10, 0x11], [0x1000, 0x1003], [0x2100, 0x2100]]},
    "trusted_only": {"coils": [[0x20, 0x27]], "holding_registers": [[0x20, 0x2F], [0x2101, 0x2102]]},
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


def _failing_output(table, first, count):
    raise RuntimeError("output driver failed")


def run_case(case):
    """Run one case; returns a list of failure messages (empty = passed)."""
    name, setup, steps, options = case
    # The last case's model is garbage now: collected first, so every case finds its 5 KB
    # register buffer in one piece on the emulated MCUs' small heaps (tests/mcu/test_qemu.py).
    gc.collect()
    model = DataModel(options.get("present"))
    calls = []
    model.subscribe(lambda table, first, count: calls.append((1, table, first, count)))
    if options.get("failing_output"):
        model.subscribe(_failing_output)
    model.subscribe(lambda table, first, count: calls.append((2, table, first, count)))
    engine = Engine(model, DeviceIdentification(options.get("identity", IDENTITY), 1))
    if "protect" in options:
        from mbnode.protect import Guard

        engine.guard = Guard(PROTECT)
    if "block" in options:
        engine.blocks.append(RamBlock(*options["block"]))
    for op in setup:
        if op[0] == "bit":
            model.set_bit(op[1], op[2], op[3])
        elif op[0] == "reg":
            model.set_reg(op[1], op[2], op[3])
        else:
            model.set_u32(op[1], op[2])
    failures = []
    req = bytearray(300)
    resp = bytearray(260)
    for step in steps:
        request, expected = step[0], step[1]
        pdu = hx(request)
        # Put the PDU at an offset, as the transports do, to prove offsets are honoured.
        for i in range(len(pdu)):
            req[7 + i] = pdu[i]
        n = engine.handle(req, 7, len(pdu), resp, 3, None, step[2] if len(step) > 2 else 0)
        got = bytes(resp[3:3 + n])
        if got != hx(expected):
            failures.append("%s: %s%s -> %s, expected %s" % (
                name, request, " (source %d)" % step[2] if len(step) > 2 else "", binascii.hexlify(got).decode(), expected.replace(" ", "").lower()))
    firsts = [c[1:] for c in calls if c[0] == 1]
    if calls != [(k, ) + c for c in firsts for k in (1, 2)]:
        failures.append("%s: not every output change reached both subscribers in order: %r" % (name, calls))
    if "outputs" in options and firsts != options["outputs"]:
        failures.append("%s: output changes %r, expected %r" % (name, firsts, options["outputs"]))
    return failures


def main():
    passed = failed = 0
    for case in CASES:
        f = run_case(case)
        if f:
            failed += 1
            for line in f:
                print("FAIL", line)
        else:
            passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    import sys

    sys.exit(1 if main() else 0)
