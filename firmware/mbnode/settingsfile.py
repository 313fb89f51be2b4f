"""The settings registers' file (mbnode.settings): laid over the configuration at boot, written
by the save command. Loaded for those two moments only (settings.call_file unloads it again, with
mbnode.store and mbnode.crc when nothing else had them loaded).

The file is mbnode.store's (generation, length, CRC; a power cut leaves the old or the new
save); its data is a format byte (1) and the registers 0x2100-0x2115 as they are on the wire.
"""

from mbnode import store
from mbnode.settings import BAUD, DEVICE_NAME, FAILSAFE, PARITIES, PARITY, SAVED, STOP, UNIT, bad

_FORMAT = 1
# What settings.bad() found wrong, by the register it returns.
_WHAT = {DEVICE_NAME: "device name", UNIT: "unit id", BAUD: "baud", PARITY: "parity", STOP: "stop bits",
         FAILSAFE: "fail-safe timeout"}


def _u16(d, reg):
    return (d[1 + 2 * reg] << 8) | d[2 + 2 * reg]


def overlay(cfg):
    """The saved settings laid over the checked configuration (they win over config.json).
    Prints one line saying what was loaded; returns store's Loaded (data None when nothing
    usable was found; its generation is where the next save counts on from)."""
    from mbnode.sysstart import slave_line, unit0  # start-up only

    path = cfg["system"]["settings"]
    loaded = store.load(path)
    d = loaded.data
    if d is not None:
        why = "%d bytes; allowed %d" % (len(d), SAVED + 1) if len(d) != SAVED + 1 or d[0] != _FORMAT \
            else _WHAT.get(bad(d, 1, unit0(cfg)))
        if why:
            print("%s: saved settings not used (%s); starting from the configuration" % (path, why))
            loaded.data = None
            return loaded
        cfg["identity"]["device_name"] = bytes(d[1:33]).split(b"\x00")[0].decode()
        cfg["unit_id"] = _u16(d, UNIT)
        line = cfg[slave_line(cfg)]
        line["baud"] = _u16(d, BAUD) | (_u16(d, BAUD + 1) << 16)
        line["parity"] = PARITIES[_u16(d, PARITY)]
        line["stopbits"] = _u16(d, STOP)
        if "failsafe" in cfg:  # the fail-safe part's timeout, ms (mbnode.failsafe); 0: fail-safe off
            t = _u16(d, FAILSAFE)
            if t:
                cfg["failsafe"]["timeout_ms"] = 100 * t
            else:
                cfg["failsafe"]["enabled"] = False
    print(loaded.describe())
    return loaded


def save(path, regs, n, generation):
    """regs[0:n] saved as save number `generation`: 0, or 1 when the filesystem refused (said
    on one line; the old save stays)."""
    data = bytearray(n + 1)
    data[0] = _FORMAT
    data[1:] = regs[:n]
    try:
        store.save(path, data, generation)
    except OSError as e:
        print("mbnode: settings not saved to %s: %s" % (path, e))
        return 1
    return 0
