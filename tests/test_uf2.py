"""The UF2 writer against the public format: block layout checked field by field, and round trips."""

import struct

import pytest

from mbnode_host import uf2


def test_block_layout():
    image = bytes(range(256)) + b"\x01\x02\x03"
    out = uf2.from_bin(image)
    assert len(out) == 2 * 512
    head = struct.unpack_from("<8I", out, 0)
    assert head == (0x0A324655, 0x9E5D5157, 0x2000, 0x10000000, 256, 0, 2, 0xE48BFF56)
    assert out[32:288] == bytes(range(256))
    assert out[288:508] == bytes(220), "payload area padded with zeros"
    assert struct.unpack_from("<I", out, 508) == (0x0AB16F30,)
    head = struct.unpack_from("<8I", out, 512)
    assert head[3:7] == (0x10000100, 256, 1, 2)
    assert out[512 + 32:512 + 35] == b"\x01\x02\x03"
    assert out[512 + 35:512 + 288] == bytes(253), "a short last chunk is padded to 256"


def test_round_trip():
    image = bytes((i * 7) & 0xFF for i in range(10000))
    back = uf2.to_bin(uf2.from_bin(image))
    assert back[:len(image)] == image
    assert back[len(image):] == b"\0" * (len(back) - len(image)), "padding of the last block"


@pytest.mark.parametrize("bad, message", [
    (b"x" * 100, "multiple of 512"),
    (b"\0" * 512, "magic"),
])
def test_rejects_what_is_not_uf2(bad, message):
    with pytest.raises(ValueError, match=message):
        uf2.to_bin(bad)


def test_rejects_other_family():
    other = uf2.from_bin(b"\0" * 256, family=0x1C5F21B0)
    with pytest.raises(ValueError, match="family"):
        uf2.to_bin(other)
