"""A Modbus RTU slave that lives on tests/fakes/line_emulator.py's own timeline: a stand-in for
third-party field devices with the habits that trouble a master, written from the Modbus
specification alone (it shares no code with mbnode or pymodbus).

    slave = EmulatedSlave(Setting(19200, parity="E"), unit=1, holding=[(0, 99)], reply_delay=0.040)
    with LineEmulator(["rfc2217", slave]) as line: ...

What makes it faithful where timing matters: it receives the characters the emulator decoded
at its setting, with the times they had on the emulated wire, and frames them as the spec
says: a frame ends after 3.5 character times of silence (1.75 ms above 19200 baud). A
character its UART drops (a parity or framing error under the "drop" policy) spoils its frame;
under "keep" (the default without parity) it takes the data bits as they came. A bad CRC spoils
a frame too; bytes that
follow garbage with less than t3.5 of silence belong to the same spoiled frame (the device
needs t3.5 of silence to resynchronise). Its answer starts `reply_delay` after the end of the
frame was detected (end + t3.5), on the emulated line, whatever the host is doing meanwhile.

The device: FC03 (holding) and FC04 (input) registers, FC01/FC02 (coils, discrete inputs) over
the address ranges given (value of register a: 1000 + a; of bit a: a & 1, until written or set);
FC05, FC06, FC15 and FC16 write coils and holding registers as the spec's tables say (values,
quantities 1..1968 coils / 1..123 registers, byte counts); addresses outside the ranges answer
exception 02, quantities out of the spec's range or a bad value or byte count exception 03.
FC08/00 echoes; every other function code answers exception 01 (FC17 and FC43 included).
set(fc, address, values) changes what the table read with function fc (1-4) holds, as the
device's field side would. Options:

  reply_delay  seconds, or a function(n) of the request number (1, 2, ...)
  miss         request numbers (1-based, counting valid frames addressed to this unit) that
               get no answer at all, or a function(n) -> True to miss
  rx           receive policy of its UART ("drop", "zero", "keep"; Setting's default)

.log lists every request addressed to it: (n, pdu hex, "answered" | "missed"), .times the
emulated wire's time at the end of each of them; .broadcasts the PDUs of broadcast frames
(unit 0: never answered, not executed); .spoiled counts frames thrown away (character errors or
CRC).
"""

import struct

from line_emulator import Setting
from modbus_crc import crc16


def with_crc(frame):
    c = crc16(frame)
    return bytes(frame) + bytes((c & 0xFF, c >> 8))


class EmulatedSlave:
    kind = "device"
    url = None

    def __init__(self, setting, unit=1, holding=(), inputs=(), coils=(), discrete=(), reply_delay=0.002,
                 miss=(), name="emulated slave"):
        self.fixed = setting
        self.unit = unit
        self.tables = {1: list(coils), 2: list(discrete), 3: list(holding), 4: list(inputs)}
        self.reply_delay = reply_delay
        self.miss = miss
        self.name = name
        self.log = []
        self.times = []
        self.values = {1: {}, 2: {}, 3: {}, 4: {}}  # what was written or set, by address
        self.broadcasts = []  # the PDUs of broadcast frames heard (hex)
        self.spoiled = 0
        self._frame = bytearray()
        self._bad = False
        self._last = None  # stop-bit time of the last character heard
        self._line = None
        self._index = None

    # ---- the emulator's end interface ------------------------------------------------------

    def attach(self, line, index):
        self._line, self._index = line, index

    def setting(self):
        return self.fixed

    def fds(self):
        return []

    def close(self):
        pass

    def on_chars(self, chars):
        """chars: (start, sampled, value, error, byte or None) in time order."""
        t35 = self.fixed.t35
        for start, sampled, _value, error, byte in chars:
            if self._last is not None and start - self._last >= t35:
                self._end_frame()
            if byte is None:  # dropped by its UART (policy "drop"): the frame is spoiled
                self._bad = True
            else:
                self._frame.append(byte)
            self._last = sampled
        if self._last is not None:
            due = self._last + t35
            self._line.call_at(due, self._check)

    def _check(self, now):
        if self._last is not None and self._last + self.fixed.t35 <= now + 1e-9:
            self._end_frame()

    # ---- the slave ----------------------------------------------------------------------------

    def _end_frame(self):
        frame, bad, end = bytes(self._frame), self._bad, self._last
        self._frame, self._bad, self._last = bytearray(), False, None
        if not frame and not bad:
            return
        if bad or len(frame) < 4 or crc16(frame[:-2]) != frame[-2] | frame[-1] << 8:
            self.spoiled += 1
            return
        if frame[0] == 0:  # a broadcast: noted, never answered
            self.broadcasts.append(frame[1:-2].hex())
            return
        if frame[0] != self.unit:
            return
        n = len(self.log) + 1
        missed = self.miss(n) if callable(self.miss) else n in self.miss
        pdu = frame[1:-2]
        self.log.append((n, pdu.hex(), "missed" if missed else "answered"))
        self.times.append(end)
        if missed:
            return
        delay = self.reply_delay(n) if callable(self.reply_delay) else self.reply_delay
        answer = with_crc(bytes((self.unit,)) + self.answer(pdu))
        when = end + self.fixed.t35 + delay
        self._line.call_at(when, lambda now: self._line.transmit(self._index, answer, at=when))

    def _present(self, fc, addr, qty):
        return any(a <= addr and addr + qty - 1 <= b for a, b in self.tables[fc])

    def value(self, fc, a):
        """What address a of the table read with fc (1-4) holds."""
        return self.values[fc].get(a, (1000 + a) & 0xFFFF if fc in (3, 4) else a & 1)

    def set(self, fc, addr, values):
        for i, v in enumerate(values):
            self.values[fc][addr + i] = v

    def answer(self, pdu):
        fc = pdu[0]
        if fc in (1, 2, 3, 4):
            if len(pdu) != 5:
                return bytes((fc | 0x80, 3))
            addr, qty = struct.unpack(">HH", pdu[1:5])
            limit = 2000 if fc in (1, 2) else 125
            if not 1 <= qty <= limit:
                return bytes((fc | 0x80, 3))
            if addr + qty > 0x10000 or not self._present(fc, addr, qty):
                return bytes((fc | 0x80, 2))
            if fc in (3, 4):
                data = b"".join(struct.pack(">H", self.value(fc, a)) for a in range(addr, addr + qty))
            else:
                bits = [self.value(fc, a) for a in range(addr, addr + qty)]
                data = bytes(sum(bits[i + k] << k for k in range(8) if i + k < qty) for i in range(0, qty, 8))
            return bytes((fc, len(data))) + data
        if fc in (5, 6):
            if len(pdu) != 5:
                return bytes((fc | 0x80, 3))
            addr, v = struct.unpack(">HH", pdu[1:5])
            if fc == 5 and v not in (0, 0xFF00):
                return bytes((fc | 0x80, 3))
            table = 1 if fc == 5 else 3
            if not self._present(table, addr, 1):
                return bytes((fc | 0x80, 2))
            self.values[table][addr] = (1 if v else 0) if fc == 5 else v
            return bytes(pdu)
        if fc in (15, 16):
            if len(pdu) < 6:
                return bytes((fc | 0x80, 3))
            addr, qty = struct.unpack(">HH", pdu[1:5])
            count = pdu[5]
            limit, size = (1968, (qty + 7) // 8) if fc == 15 else (123, 2 * qty)
            if not 1 <= qty <= limit or count != size or len(pdu) != 6 + count:
                return bytes((fc | 0x80, 3))
            table = 1 if fc == 15 else 3
            if addr + qty > 0x10000 or not self._present(table, addr, qty):
                return bytes((fc | 0x80, 2))
            data = pdu[6:]
            for i in range(qty):
                if fc == 15:
                    self.values[1][addr + i] = (data[i // 8] >> (i % 8)) & 1
                else:
                    self.values[3][addr + i] = struct.unpack(">H", data[2 * i:2 * i + 2])[0]
            return bytes(pdu[:5])
        if fc == 8 and len(pdu) >= 3 and pdu[1:3] == b"\x00\x00":
            return bytes(pdu)
        return bytes((fc | 0x80, 1))

    def counts(self):
        answered = sum(1 for _, _, what in self.log if what == "answered")
        return {"requests": len(self.log), "answered": answered, "missed": len(self.log) - answered,
                "spoiled": self.spoiled}
