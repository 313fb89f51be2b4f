"""The settings registers at 0x2100-0x2119 (docs/register-map.md, "Settings"): an Engine
register block of holding registers, read with FC03, written with FC06/16 (and FC22/23), saved
to flash with mbnode.store on the "save" command and laid over config.json at boot (mbnode.sysstart.overlay).

A write is applied to a copy of the block first (the registers are storage: a 32-bit value may
be written one half at a time) and the whole copy checked; any bad value makes the write
exception 03 and changes nothing. The reboot command and the unit id register are refused with
exception 02 when system.reboot / system.unit_id_writes are false, like any write protection.
Nothing here allocates on a read or an ordinary write; a save (store.save: file I/O) and the
clock's NTP do, and they are not on the request path of anything but the save command itself.

What takes effect when: the device name at once (status registers 0x2020; FC43/FC17 after the
reboot), the clock at once, the unit id, the RTU line settings and the fail-safe timeout after a
reboot, and only if they were saved.
"""

import time

from mbnode.datamodel import HOLDING
from mbnode.fast import copy
from mbnode.sysregs import NAME, put16

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_FIRST = const(0x2100)
COUNT = const(0x1A)
# Register offsets from _FIRST.
DEVICE_NAME = const(0x00)  # 16 registers
UNIT = const(0x10)
BAUD = const(0x11)  # 2, lower half first
PARITY = const(0x13)  # 0 none, 1 odd, 2 even
STOP = const(0x14)
FAILSAFE = const(0x15)  # 0.1 s, 0: off
_TIME = const(0x16)  # 2, lower half first
_SAVE = const(0x18)
_REBOOT = const(0x19)
SAVED = const(2 * _TIME)  # the bytes a save keeps: name .. fail-safe timeout

PARITIES = "NOE"
_REBOOT_MS = const(1000)  # the reboot comes this long after the command's reply was made
_BUSY = const(6)  # exception 06: a save inside the rate limit


def _u16(b, reg):
    return (b[2 * reg] << 8) | b[2 * reg + 1]


def bad(b, o, unit0):
    """-1 when the settings in b (registers from byte o) are all valid, else the register of the
    first one that is not (DEVICE_NAME, UNIT, BAUD, PARITY, STOP, FAILSAFE; mbnode.settingsfile
    names them)."""
    end = False
    for i in range(32):
        c = b[o + i]
        if c == 0:
            end = True
        elif end or c < 32 or c > 126:
            return DEVICE_NAME
    unit = (b[o + 2 * UNIT] << 8) | b[o + 2 * UNIT + 1]
    if unit > 247 or unit == 0 and not unit0:
        return UNIT
    lo = (b[o + 2 * BAUD] << 8) | b[o + 2 * BAUD + 1]
    hi = (b[o + 2 * BAUD + 2] << 8) | b[o + 2 * BAUD + 3]
    if hi > 0x3D or hi == 0 and lo < 300 or (hi << 16 | lo) > 4000000:
        return BAUD
    if b[o + 2 * PARITY] or b[o + 2 * PARITY + 1] > 2:
        return PARITY
    if b[o + 2 * STOP] or b[o + 2 * STOP + 1] != 1 and b[o + 2 * STOP + 1] != 2:
        return STOP
    if ((b[o + 2 * FAILSAFE] << 8) | b[o + 2 * FAILSAFE + 1]) > 36000:  # failsafe.timeout_ms: at most 3600 s
        return FAILSAFE
    return -1


def call_file(fn, *args):
    # mbnode.settingsfile's fn(*args), with that module (and store, crc, if they were not loaded
    # yet) unloaded again afterwards: they are needed at boot and for a save only.
    import sys

    import mbnode

    before = list(sys.modules)
    from mbnode import settingsfile

    try:
        return getattr(settingsfile, fn)(*args)
    finally:
        for name in list(sys.modules):
            if name not in before:
                del sys.modules[name]
                if name.startswith("mbnode.") and hasattr(mbnode, name[7:]):
                    delattr(mbnode, name[7:])


class Settings:
    """The settings block; its fields are set by mbnode.sysstart (start-up code, unloaded once
    the parts are built)."""

    # --- the Engine's register block

    def holds(self, table, first, count):
        return table == HOLDING and first >= _FIRST and first + count <= _FIRST + COUNT

    def read(self, table, first, count, buf, off):
        self.status.put_time(self.regs, _TIME)
        copy(buf, off, self.regs, 2 * (first - _FIRST), 2 * count)
        return 0

    def write(self, first, count, src, so, source):
        i = first - _FIRST
        end = i + count
        if not self.unit_ok and i <= UNIT < end or not self.reboot_ok and i <= _REBOOT < end:
            return -2
        s = self.scratch
        r = self.regs
        self.status.put_time(r, _TIME)
        copy(s, 0, r, 0, 2 * COUNT)
        copy(s, 2 * i, src, so, 2 * count)
        if bad(s, 0, self.unit0) >= 0:
            return -3
        save = _u16(s, _SAVE)
        reboot = _u16(s, _REBOOT)
        if save > 1 or reboot > 1:
            return -3
        up = self.status.uptime()
        if save and self.saved_at is not None and up - self.saved_at <= self.interval:
            return -_BUSY
        copy(r, 0, s, 0, 2 * COUNT)
        put16(r, _SAVE, 0)
        put16(r, _REBOOT, 0)
        if i < _TIME + 2 and end > _TIME:
            self.status.set_time(_u16(r, _TIME + 1), _u16(r, _TIME))
        if i < DEVICE_NAME + 16:
            copy(self.status.buf, 2 * NAME, r, 2 * DEVICE_NAME, 32)
        if save:
            k = self.save(up)
            if k:
                return k
            if self.health.retain is not None:  # retained memory too, at its next quiet moment
                self.health.retain.save_now()
        if reboot:
            self.status.reboot_at = time.ticks_add(time.ticks_ms(), _REBOOT_MS)
        return 0

    def save(self, up):
        """The settings to flash (mbnode.settingsfile): 0, or -04 when the filesystem refused."""
        if call_file("save", self.path, self.regs, SAVED, self.generation + 1):
            self.health.fault |= 2  # mbnode.health.FAULT_FLASH
            return -4
        self.generation += 1
        self.saved_at = up
        self.health.flash_writes += 1
        self.health.fault &= ~2  # FAULT_FLASH: this save went through
        return 0
