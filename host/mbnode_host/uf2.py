"""UF2 files: the drag-and-drop firmware format of the RP2040's USB boot loader.

A UF2 file is a run of 512-byte blocks, each carrying 256 bytes of the image and the flash
address they go to, framed by fixed magic numbers, with the family id that tells a boot loader
the file is meant for its chip (Microsoft's public UF2 specification). picotool would write it,
but Debian's picotool needs a newer C library than bookworm's, so we write it ourselves.
"""

import struct

RP2040_FAMILY = 0xE48BFF56
RP2040_FLASH = 0x10000000  # XIP base: flash offset 0 as the chip sees it

_MAGIC0 = 0x0A324655  # "UF2\n"
_MAGIC1 = 0x9E5D5157
_MAGIC_END = 0x0AB16F30
_FLAG_FAMILY = 0x00002000  # the familyID field is set
_PAYLOAD = 256
_DATA_FIELD = 476  # payload area of a block; the payload is padded with zeros


def from_bin(image, base=RP2040_FLASH, family=RP2040_FAMILY):
    """UF2 bytes for a flat image to be written at address `base`."""
    count = (len(image) + _PAYLOAD - 1) // _PAYLOAD
    out = bytearray()
    for n in range(count):
        chunk = image[n * _PAYLOAD:(n + 1) * _PAYLOAD]
        out += struct.pack("<8I", _MAGIC0, _MAGIC1, _FLAG_FAMILY, base + n * _PAYLOAD, _PAYLOAD, n, count,
                           family)
        out += chunk.ljust(_DATA_FIELD, b"\0")
        out += struct.pack("<I", _MAGIC_END)
    return bytes(out)


def to_bin(uf2, base=RP2040_FLASH, family=RP2040_FAMILY):
    """The flat image a UF2 file writes from `base` on (gaps filled with 0xFF, as erased flash);
    ValueError for a file that is not a UF2 image for this family."""
    if not uf2 or len(uf2) % 512:
        raise ValueError("not a UF2 file: its size is not a multiple of 512 bytes")
    image = bytearray()
    for off in range(0, len(uf2), 512):
        m0, m1, flags, addr, size, _, _, fam = struct.unpack_from("<8I", uf2, off)
        (end,) = struct.unpack_from("<I", uf2, off + 508)
        if (m0, m1, end) != (_MAGIC0, _MAGIC1, _MAGIC_END):
            raise ValueError("not a UF2 file: block %d has wrong magic numbers" % (off // 512))
        if flags & _FLAG_FAMILY and fam != family:
            raise ValueError("UF2 block %d is for family 0x%08X, not 0x%08X" % (off // 512, fam, family))
        if size > _DATA_FIELD or addr < base:
            raise ValueError("UF2 block %d: address 0x%08X size %d outside the image" % (off // 512, addr, size))
        at = addr - base
        if len(image) < at + size:
            image += b"\xff" * (at + size - len(image))
        image[at:at + size] = uf2[off + 32:off + 32 + size]
    return bytes(image)
