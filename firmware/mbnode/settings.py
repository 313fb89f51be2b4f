"""The settings registers at 0x2100-0x2119 (docs/register-map.md, "Settings"): an Engine
register block of holding registers, read with FC03, written with FC06/16 (and FC22/23), saved
to flash with mbnode.store on the "save" command and laid over config.json at boot (overlay).

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
from mbnode.sysregs import NAME, put16, put_text

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

FIRST = const(0x2100)
COUNT = const(0x1A)
# Register offsets from FIRST.
_NAME = const(0x00)  # 16 registers
UNIT = const(0x10)
_BAUD = const(0x11)  # 2, lower half first
_PARITY = const(0x13)  # 0 none, 1 odd, 2 even
_STOP = const(0x14)
_FAILSAFE = const(0x15)  # 0.1 s, 0: off
_TIME = const(0x16)  # 2, lower half first
_SAVE = const(0x18)
REBOOT = const(0x19)
_SAVED = const(2 * _TIME)  # the bytes a save keeps: name .. fail-safe timeout
_FORMAT = const(1)  # first byte of the saved data

PARITIES = "NOE"
REBOOT_MS = const(1000)  # the reboot comes this long after the command's reply was made
BUSY = const(6)  # exception 06: a save inside the rate limit


def _u16(b, reg):
    return (b[2 * reg] << 8) | b[2 * reg + 1]


def slave_line(cfg):
    """The configuration key of the serial line the settings' RTU values are for: the slave
    line, else "rtu"."""
    return "rtu2" if cfg["rtu2"]["enabled"] and cfg["rtu2"]["mode"] == "slave" else "rtu"


def _bad(b, o, unit0):
    """None when the settings in b (registers from byte o) are all valid, else what is wrong."""
    end = False
    for i in range(32):
        c = b[o + i]
        if c == 0:
            end = True
        elif end or c < 32 or c > 126:
            return "device name"
    unit = (b[o + 2 * UNIT] << 8) | b[o + 2 * UNIT + 1]
    if unit > 247 or unit == 0 and not unit0:
        return "unit id"
    lo = (b[o + 2 * _BAUD] << 8) | b[o + 2 * _BAUD + 1]
    hi = (b[o + 2 * _BAUD + 2] << 8) | b[o + 2 * _BAUD + 3]
    if hi > 0x3D or hi == 0 and lo < 300 or (hi << 16 | lo) > 4000000:
        return "baud"
    if b[o + 2 * _PARITY] or b[o + 2 * _PARITY + 1] > 2:
        return "parity"
    if b[o + 2 * _STOP] or b[o + 2 * _STOP + 1] != 1 and b[o + 2 * _STOP + 1] != 2:
        return "stop bits"
    return None


def _unit0(cfg):
    # Unit id 0 (any unit) is for Modbus TCP only, as in config.py.
    return not any(cfg[k]["enabled"] and cfg[k]["mode"] == "slave" for k in ("rtu", "rtu2"))


def overlay(cfg):
    """At boot, before the transports are built: the saved settings laid over the checked
    configuration (they win over config.json). Prints one line saying what was loaded; returns
    store's Loaded (its generation is where the next save counts on from)."""
    from mbnode import store

    path = cfg["system"]["settings"]
    loaded = store.load(path)
    d = loaded.data
    if d is not None:
        bad = "it has %d bytes; allowed %d" % (len(d), _SAVED + 1) if len(d) != _SAVED + 1 or d[0] != _FORMAT \
            else _bad(d, 1, _unit0(cfg))
        if bad:
            print("%s: saved settings not used (%s); starting from the configuration" % (path, bad))
            loaded.data = None
            return loaded
        name = bytes(d[1:33]).split(b"\x00")[0].decode()
        cfg["identity"]["device_name"] = name
        cfg["unit_id"] = _u16(d[1:], UNIT)
        line = cfg[slave_line(cfg)]
        line["baud"] = _u16(d[1:], _BAUD) | (_u16(d[1:], _BAUD + 1) << 16)
        line["parity"] = PARITIES[_u16(d[1:], _PARITY)]
        line["stopbits"] = _u16(d[1:], _STOP)
        if "failsafe" in cfg:  # the fail-safe part's timeout, ms (mbnode.failsafe)
            cfg["failsafe"]["timeout_ms"] = 100 * _u16(d[1:], _FAILSAFE)
    print(loaded.describe())
    return loaded


class Settings:
    def __init__(self, status, cfg, health, saved):
        self.status = status
        self.clock = status.clock
        self.health = health
        system = cfg["system"]
        self.path = system["settings"]
        self.interval = 1000 * system["save_interval"]
        self.reboot_ok = system["reboot"]
        self.unit_ok = system["unit_id_writes"]
        self.unit0 = _unit0(cfg)
        self.generation = saved.generation if saved is not None else 0
        self.saved_at = None  # ticks_ms of the last save since boot
        self.regs = bytearray(2 * COUNT)
        self.scratch = bytearray(2 * COUNT)
        r = self.regs
        if saved is not None and saved.data is not None:  # as saved (overlay checked them)
            copy(r, 0, saved.data, 1, _SAVED)
            copy(status.buf, 2 * NAME, r, 2 * _NAME, 32)
            return
        put_text(r, _NAME, cfg["identity"]["device_name"], 16)
        if _bad(r, 0, True) == "device name":  # a configured name the registers cannot hold
            put_text(r, _NAME, "", 16)
        put16(r, UNIT, cfg["unit_id"])
        line = cfg[slave_line(cfg)]
        put16(r, _BAUD, line["baud"] & 0xFFFF)
        put16(r, _BAUD + 1, line["baud"] >> 16)
        put16(r, _PARITY, PARITIES.index(line["parity"]))
        put16(r, _STOP, line["stopbits"])
        fs = cfg.get("failsafe")
        put16(r, _FAILSAFE, min(0xFFFF, fs.get("timeout_ms", 0) // 100) if fs else 0)
        copy(status.buf, 2 * NAME, r, 2 * _NAME, 32)

    # --- the Engine's register block

    def holds(self, table, first, count):
        return table == HOLDING and first >= FIRST and first + count <= FIRST + COUNT

    def read(self, table, first, count, buf, off):
        self.clock.put(self.regs, _TIME)
        copy(buf, off, self.regs, 2 * (first - FIRST), 2 * count)
        return 0

    def write(self, first, count, src, so, source):
        i = first - FIRST
        end = i + count
        if not self.unit_ok and i <= UNIT < end or not self.reboot_ok and i <= REBOOT < end:
            return -2
        s = self.scratch
        r = self.regs
        self.clock.put(r, _TIME)
        copy(s, 0, r, 0, 2 * COUNT)
        copy(s, 2 * i, src, so, 2 * count)
        if _bad(s, 0, self.unit0) is not None:
            return -3
        save = _u16(s, _SAVE)
        reboot = _u16(s, REBOOT)
        if save > 1 or reboot > 1:
            return -3
        now = time.ticks_ms()
        if save and self.saved_at is not None and time.ticks_diff(now, self.saved_at) < self.interval:
            return -BUSY
        copy(r, 0, s, 0, 2 * COUNT)
        put16(r, _SAVE, 0)
        put16(r, REBOOT, 0)
        if i < _TIME + 2 and end > _TIME:
            self.clock.set(_u16(r, _TIME + 1), _u16(r, _TIME))
        if i < _NAME + 16:
            copy(self.status.buf, 2 * NAME, r, 2 * _NAME, 32)
        if save:
            k = self.save(now)
            if k:
                return k
        if reboot:
            self.status.reboot_at = time.ticks_add(now, REBOOT_MS)
        return 0

    def save(self, now):
        """The settings to flash (store.save): 0, or -04 when the filesystem refused."""
        from mbnode import store

        data = bytearray(_SAVED + 1)
        data[0] = _FORMAT
        copy(data, 1, self.regs, 0, _SAVED)
        try:
            store.save(self.path, data, self.generation + 1)
        except OSError as e:
            print("mbnode: settings not saved to %s: %s" % (self.path, e))
            return -4
        self.generation += 1
        self.saved_at = now
        self.health.flash_writes += 1
        return 0
