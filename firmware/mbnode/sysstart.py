"""Start-up only: the "system" section's part built (mbnode.sysconfig): the status block
(mbnode.sysregs.Status), the settings block (mbnode.settings.Settings) and NTP on the Engine.
startup.build calls overlay() (the saved settings, before the transports are built) and start(); the
module is unloaded with the rest of the start-up code (START_ONLY True), so its functions and
texts take no RAM once the device serves."""

import gc
import time

from mbnode import VERSION
from mbnode.fast import copy
from mbnode.settings import BAUD, DEVICE_NAME, FAILSAFE, PARITIES, PARITY, SAVED, STOP, UNIT
from mbnode.settings import COUNT as SETTINGS_COUNT
from mbnode.settings import Settings, bad, call_file
from mbnode.sysregs import COUNT, FIRMWARE, FIRST, MAC, NAME, NO_TEMPERATURE, Status, put16

START_ONLY = True  # unloaded once the parts are built (mbnode.startup.forget)


def overlay(cfg):
    """At boot, before the transports are built: the saved settings laid over the checked
    configuration (mbnode.settingsfile.overlay); store's Loaded."""
    return call_file("overlay", cfg)


def slave_line(cfg):
    """The configuration key of the serial line the settings' RTU values are for: the slave
    line, else "rtu"."""
    return "rtu2" if cfg["rtu2"]["enabled"] and cfg["rtu2"]["mode"] == "slave" else "rtu"


def unit0(cfg):
    # Unit id 0 (any unit) is for Modbus TCP only, as in config.py.
    return not any(cfg[k]["enabled"] and cfg[k]["mode"] == "slave" for k in ("rtu", "rtu2"))


def put_text(buf, reg, text, regs):
    """`text` in `regs` registers from `reg`: 2 characters per register, high byte first,
    cut at 2*regs characters, zero-padded."""
    o = 2 * reg
    for i in range(2 * regs):
        buf[o + i] = ord(text[i]) & 0xFF if i < len(text) else 0


def start(loop, engine, cfg, board, health, saved):
    """The status block, the settings block (mbnode.settings) and NTP (system.ntp) on `engine`;
    `saved`: what overlay() loaded at boot. Returns the words for the ready line."""
    status = _status(engine, health, board)
    settings = _settings(status, cfg, health, saved)
    engine.blocks.append(status)
    engine.blocks.append(settings)
    loop.add_timer(status)
    words = ["system 0x%04X" % FIRST]
    ntp = cfg["system"]["ntp"]
    if ntp == "auto":
        ntp = "pool.ntp.org" if getattr(board, "WIFI", False) else ""
    if ntp:
        from mbnode.ntp import Ntp

        status.ntp = Ntp(loop, status, ntp, cfg["system"]["ntp_interval"], hasattr(board, "addresses"))
        words.append("ntp " + ntp)
    return words


def _status(engine, health, board):
    """The status block of the Engine `engine`, with the fixed texts written and a first tick."""
    s = Status()
    s.engine = engine
    s.health = health
    s.board = board
    s.buf = bytearray(2 * COUNT)
    s.secs = 0  # whole seconds of uptime counted by tick()
    s.ms = 0  # and the milliseconds not yet a second
    s.last = time.ticks_ms()
    s.least = gc.mem_free()
    s.temp = NO_TEMPERATURE
    s.temperature = getattr(board, "temperature", None)  # the board's reader, if it has one
    s.ips = board.addresses() if hasattr(board, "addresses") else ()  # the board's live list
    s.ip = None  # the text put into the IPv4 registers
    # The clock: unix time, s, as mbnode knows it (0 while unknown), set by the settings block or
    # NTP; kept as two 16-bit halves and the uptime when set, so that reading it never makes a
    # long int on a 32-bit port.
    s.t_hi = s.t_lo = 0
    s.t_at = 0
    s.ntp = None  # mbnode.ntp.Ntp, when configured
    s.reboot_at = None  # ticks_ms when the settings block's reboot is due
    put_text(s.buf, FIRMWARE, VERSION, 16)
    put_text(s.buf, MAC, board.mac() if hasattr(board, "mac") else "", 16)
    s.tick(s.last)
    return s


def _configured(r, cfg):
    """The registers as config.json has them, when no settings were saved."""
    put_text(r, DEVICE_NAME, cfg["identity"]["device_name"], 16)
    if bad(r, 0, True) == DEVICE_NAME:  # a configured name the registers cannot hold
        put_text(r, DEVICE_NAME, "", 16)
    put16(r, UNIT, cfg["unit_id"])
    line = cfg[slave_line(cfg)]
    put16(r, BAUD, line["baud"] & 0xFFFF)
    put16(r, BAUD + 1, line["baud"] >> 16)
    put16(r, PARITY, PARITIES.index(line["parity"]))
    put16(r, STOP, line["stopbits"])
    fs = cfg.get("failsafe")
    put16(r, FAILSAFE, fs["timeout_ms"] // 100 if fs and fs["enabled"] else 0)


def _settings(status, cfg, health, saved):
    """The settings block for the status block `status` (mbnode.sysregs); `saved`: what
    overlay() loaded at boot."""
    s = Settings()
    s.status = status
    s.health = health
    system = cfg["system"]
    s.path = system["settings"]
    s.interval = system["save_interval"]  # s
    s.reboot_ok = system["reboot"]
    s.unit_ok = system["unit_id_writes"]
    s.unit0 = unit0(cfg)
    s.generation = saved.generation if saved is not None else 0
    # Uptime (s) of the last save since boot: the rate limit counts whole seconds of uptime (a
    # save is taken when more than save_interval s have passed), which never wraps.
    s.saved_at = None
    s.regs = bytearray(2 * SETTINGS_COUNT)
    s.scratch = bytearray(2 * SETTINGS_COUNT)
    if saved is not None and saved.data is not None:  # as saved (overlay checked them)
        copy(s.regs, 0, saved.data, 1, SAVED)
    else:
        _configured(s.regs, cfg)
    copy(status.buf, 2 * NAME, s.regs, 2 * DEVICE_NAME, 32)
    return s
