# MicroPython script: micropython-modbus 2.3.7 (`umodbus`) as a Modbus RTU slave on the unix port,
# serving a pty through a stand-in `machine.UART`, with the map of bench/umodbus_server.py
# (64 coils, 64 discrete inputs, 128 holding and 128 input registers, all at address 0).
#
#   micropython umodbus_rtu_server.py PATH BAUD PARITY STOP MAX_SECONDS [alloc WARM COUNT]
#
# PARITY is N, E or O; STOP 1 or 2. Prints "ready rtu PATH" once the device is open, then calls
# ModbusRTU.process() in a loop, as its README's RTU example does, until SIGINT or MAX_SECONDS.
# With "alloc" it prints "alloc BYTES COUNT" = heap bytes allocated over COUNT served requests
# after WARM warm-up ones (gc disabled meanwhile), then keeps serving.
#
# Why a stand-in: umodbus/serial.py does `from machine import UART, Pin`; the unix port's
# `machine` has neither. A module object named `machine` is put into sys.modules before umodbus
# is imported, so its import finds ours. umodbus itself is unchanged.
#
# The stand-in UART (what umodbus calls: constructor, any, read, write, flush; plus readinto and
# txdone for completeness) and why it is fair:
# - The device path is opened "r+b" (unbuffered FileIO) and put in raw mode with VMIN=0 and
#   VTIME=0, so every read returns at once with what the pty holds (0 bytes if nothing): that is
#   the behaviour of a MicroPython UART with timeout=0, the configuration umodbus expects.
# - any() is honest: it does one non-blocking read into a read-ahead buffer and returns how many
#   bytes are buffered, i.e. exactly what has arrived. When the buffer is empty (the common,
#   idle case) the read goes into the buffer itself without allocating. It costs one read()
#   system call (about 1-2 us here); on a board any() reads a driver counter, which is cheaper,
#   so if anything the stand-in makes umodbus slightly slower per poll, never faster or slower
#   by a fixed delay.
# - read() returns everything buffered plus whatever else has arrived, or None if nothing,
#   as UART.read() does with timeout=0; it allocates one bytes object, as the real one does.
# - write() hands the whole frame to the pty in one call (the peer can read it at once);
#   flush() and txdone() have no wire to wait for, so they return at once. umodbus's own
#   time.sleep_us(one character) after flush() is kept, but it runs after the reply is out.
# - Pin (only constructed if a DE pin is given; the bench gives none, and neither does the bench
#   of mbnode) records the level it is set to.
import sys

import termios

_VTIME = 5  # Linux c_cc indexes
_VMIN = 6
_RA = 512  # read-ahead buffer: larger than any RTU frame (256 bytes)


class UART:
    """machine.UART stand-in over a pty or serial device path (see the header)."""

    PATH = None  # set by main() before umodbus constructs its UART

    def __init__(self, uart_id=1, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                 **kw):
        if UART.PATH is None:
            raise ValueError("UART stand-in: set UART.PATH to the device path first")
        self.settings = (uart_id, baudrate, bits, parity, stop, tx, rx)
        self._f = open(UART.PATH, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._buf = bytearray(_RA)
        self._mv = memoryview(self._buf)
        self._n = 0

    def any(self):
        n = self._n
        if n == 0:
            k = self._f.readinto(self._buf)  # no allocation on the idle path
        elif n < _RA:
            k = self._f.readinto(self._mv[n:])
        else:
            k = 0
        if k:
            n += k
            self._n = n
        return n

    def read(self, nbytes=-1):
        n = self.any()
        if n == 0:
            return None
        if nbytes is None or nbytes < 0 or nbytes >= n:
            out = bytes(self._mv[:n])
            self._n = 0
        else:
            out = bytes(self._mv[:nbytes])
            self._buf[:n - nbytes] = self._buf[nbytes:n]
            self._n = n - nbytes
        return out

    def readinto(self, buf, nbytes=-1):
        n = self.any()
        if n == 0:
            return None
        if nbytes is None or nbytes < 0:
            nbytes = len(buf)
        k = min(n, nbytes)
        buf[:k] = self._buf[:k]
        if k < n:
            self._buf[:n - k] = self._buf[k:n]
        self._n = n - k
        return k

    def write(self, buf):
        return self._f.write(buf)

    def flush(self):
        pass

    def txdone(self):
        return True

    def deinit(self):
        self._f.close()


class Pin:
    """machine.Pin stand-in: remembers its level."""

    IN = 0
    OUT = 1

    def __init__(self, pin_id, mode=IN, *args, **kw):
        self.id = pin_id
        self.level = 0

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0

    def on(self):
        self.level = 1

    def off(self):
        self.level = 0


class _Machine:
    UART = UART
    Pin = Pin


sys.modules["machine"] = _Machine

from umodbus.serial import ModbusRTU  # noqa: E402 - after the stand-in is in place
from umodbus_server import REGISTERS, serve  # noqa: E402 - the TCP bench server's map and loop

PARITY = {"N": None, "E": 0, "O": 1}  # machine.UART's parity argument


def main():
    path, baud, parity, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    max_ms = int(float(sys.argv[5]) * 1000) if len(sys.argv) > 5 else 600000
    alloc = sys.argv[6:9] if len(sys.argv) > 8 and sys.argv[6] == "alloc" else None
    if parity not in PARITY or stop not in (1, 2):
        raise ValueError("parity %r stop %r: allowed parity N, E, O and stop 1, 2" % (parity, stop))
    UART.PATH = path
    slave = ModbusRTU(addr=1, baudrate=baud, data_bits=8, stop_bits=stop, parity=PARITY[parity],
                      pins=(0, 1), ctrl_pin=None, uart_id=1)
    slave.setup_registers(registers=REGISTERS)
    print("ready rtu %s" % path)
    serve(slave, max_ms, alloc, 15)

try:
    main()
except KeyboardInterrupt:
    pass
