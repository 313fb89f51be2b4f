"""The system status registers at 0x2000-0x204F (docs/register-map.md, "System status"): an
Engine register block (Engine.blocks), read-only, FC03 and FC04 alike.

The block is one 160-byte buffer in wire format. The fixed texts (firmware version, MAC) are
written once at start-up, the device name when the settings block (mbnode.settings) changes it;
a read refreshes the live figures in place (uptime, heap, the Engine's counters, health's fields,
the clock) and copies the registers asked for, allocating nothing. What cannot be read without
allocating (the chip temperature: floats and an ADC read on a board; the IPv4 text parsed) is
looked at by the block's loop timer once a second, which also keeps the uptime counting past the
ticks_ms wrap and samples the free heap for the smallest value seen.

Loaded only with the configuration's "system" section (mbnode.sysconfig); mbnode.sysstart builds the
status block, the settings block and (system.ntp) the NTP client.
"""

import gc
import time

from mbnode.fast import copy
from mbnode.datamodel import HOLDING, INPUT

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

FIRST = const(0x2000)
COUNT = const(0x50)
# Register offsets from FIRST (docs/register-map.md); the public ones are mbnode.sysstart's too.
_UPTIME = const(0x00)
_FREE = const(0x02)
_LEAST = const(0x04)
_REQUESTS = const(0x06)
_EXCEPTIONS = const(0x08)
_CRC = const(0x0A)
_TCP = const(0x0C)
_FAILSAFE = const(0x0D)
_TEMP = const(0x0E)
_FAULT = const(0x0F)
_TIME = const(0x10)
_IPV4 = const(0x12)
_FLASH = const(0x16)
NAME = const(0x20)
FIRMWARE = const(0x30)
MAC = const(0x40)
NO_TEMPERATURE = const(0x8000)


def put16(buf, reg, v):
    buf[2 * reg] = (v >> 8) & 0xFF
    buf[2 * reg + 1] = v & 0xFF


def put32(buf, reg, v):
    # A 32-bit value, lower half first (like every 32-bit value of the map).
    put16(buf, reg, v & 0xFFFF)
    put16(buf, reg + 1, v >> 16)


class Status:
    """The status block; its fields are set by mbnode.sysstart (start-up code, unloaded once the
    parts are built)."""

    # --- the Engine's register block

    def holds(self, table, first, count):
        return (table == HOLDING or table == INPUT) and first >= FIRST and first + count <= FIRST + COUNT

    def read(self, table, first, count, buf, off):
        self.refresh()
        copy(buf, off, self.buf, 2 * (first - FIRST), 2 * count)
        return 0

    def write(self, first, count, src, so, source):
        return -2  # read-only (exception 02)

    # --- figures

    def uptime(self):
        return self.secs + (self.ms + time.ticks_diff(time.ticks_ms(), self.last)) // 1000

    def refresh(self):
        """The live figures into the buffer, allocation-free."""
        b = self.buf
        e = self.engine
        h = self.health
        put32(b, _UPTIME, self.uptime())
        free = gc.mem_free()
        if free < self.least:
            self.least = free
        put32(b, _FREE, free)
        put32(b, _LEAST, self.least)
        put16(b, _REQUESTS, e.requests_lo)
        put16(b, _REQUESTS + 1, e.requests_hi)
        put16(b, _EXCEPTIONS, e.exceptions_lo)
        put16(b, _EXCEPTIONS + 1, e.exceptions_hi)
        line = h.line
        put16(b, _CRC, line.crc_lo if line is not None else 0)
        put16(b, _CRC + 1, line.crc_hi if line is not None else 0)
        put16(b, _TCP, h.tcp.clients() if h.tcp is not None else 0)
        put16(b, _FAILSAFE, h.failsafe)
        put16(b, _TEMP, self.temp)
        put16(b, _FAULT, h.fault)
        self.put_time(b, _TIME)
        put32(b, _FLASH, h.flash_writes)

    def set_time(self, hi, lo):
        """The clock is now hi * 65536 + lo (0: unknown)."""
        self.t_hi = hi
        self.t_lo = lo
        self.t_at = self.uptime()

    def put_time(self, buf, reg):
        """The clock now into buf at register `reg` (lower half first), allocation-free."""
        if self.t_hi == 0 and self.t_lo == 0:
            put16(buf, reg, 0)
            put16(buf, reg + 1, 0)
            return
        lo = self.t_lo + self.uptime() - self.t_at
        put16(buf, reg, lo & 0xFFFF)
        put16(buf, reg + 1, (self.t_hi + (lo >> 16)) & 0xFFFF)

    # --- the loop timer: once a second, and the reboot when one is due

    def due_in(self, now):
        d = 1000 - self.ms - time.ticks_diff(now, self.last)
        if self.reboot_at is not None:
            r = time.ticks_diff(self.reboot_at, now)
            if r < d:
                d = r
        return d if d > 0 else 0

    def tick(self, now):
        d = time.ticks_diff(now, self.last)
        self.last = now
        ms = self.ms + d
        self.secs += ms // 1000
        self.ms = ms % 1000
        free = gc.mem_free()
        if free < self.least:
            self.least = free
        if self.temperature is not None:
            t = self.temperature()  # 0.1 degC, or None
            self.temp = NO_TEMPERATURE if t is None else t & 0xFFFF
        ips = self.ips
        ip = ips[0] if ips else ""
        if ip is not self.ip:
            self.ip = ip
            parts = ip.split(".") if ip else ()
            for i in range(4):
                put16(self.buf, _IPV4 + i, int(parts[i]) if len(parts) == 4 else 0)
        if self.ntp is not None:
            self.ntp.tick(now, ip)
        if self.reboot_at is not None and time.ticks_diff(now, self.reboot_at) >= 0:
            self.reboot_at = None
            self.board.reboot()
