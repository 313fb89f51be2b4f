"""A third-party Modbus RTU slave for the `mbnode probe` tests and bench: pymodbus 3.x on a
serial port (any pyserial URL, e.g. one end of tests/fakes/line_emulator.py).

    python tests/fakes/pymodbus_rtu_device.py --port /dev/pts/N --baud 38400 --parity O --unit 17

prints `ready PORT 38400-8O1 unit 17` on stdout once it serves, then runs until SIGTERM/SIGINT.

The device: holding registers 100-199 only (values 1000 + address); every coil, discrete input
and input register address answers exception 02; FC43/14 and FC17 report the identity below.
Two changes to pymodbus's behaviour (in `_RtuSlaveHandler`), so that it acts like a real slave
on an RS-485 bus:

  * requests for other unit ids get no answer. pymodbus 3.16.1 answers them with exception 04
    (its SimCore looks up device 0, which does not exist: KeyError -> "device failure"), even
    with ignore_missing_devices=True;
  * a real RTU slave starts a new frame after 3.5 character times of silence, so bytes garbled
    by a wrong line setting are forgotten before the next request. pymodbus's RTU framer has no
    timer and can keep such bytes in its buffer, where they swallow the next good frame. The
    handler drops the buffer when bytes arrive after a silence longer than t3.5, measured on
    the host clock with a 5 ms floor (pymodbus polls an URL port every 0.5 ms, so the bytes of
    one frame may arrive a little spread out). On a busy machine this process may read the
    garbage and the next request at once, the silence between them unseen: then leading bytes
    are dropped when what follows them is a whole valid frame for this unit (a device with a
    hardware timer would have seen the silence). For a device that needs the silence, see
    tests/fakes/emulated_slave.py, which frames on the emulated wire's own time.

`--delay S` makes it a slow device: each answer waits S seconds before it is sent.
"""

import argparse
import asyncio
import logging
import signal
import sys
import time

import serial.rfc2217
from pymodbus.constants import ExcCodes
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusSerialServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.transport.serialtransport import SerialTransport

from modbus_crc import crc16 as _crc16

HOLDING_FIRST = 100
HOLDING_COUNT = 100
IDENTITY = {
    0x00: "PyModbus Fake Devices",   # VendorName
    0x01: "PMF-RTU-17",              # ProductCode
    0x02: "3.16",                    # MajorMinorRevision
    0x03: "https://example.invalid/pmf",
    0x04: "Holding-only test slave",  # ProductName
    0x05: "HR100",                   # ModelName
}
HOLDING_FCS = (3, 6, 16, 22, 23)


def t35(baud, bits_per_char):
    return 0.00175 if baud > 19200 else 3.5 * bits_per_char / baud



def _frame_at_end(buf, unit):
    """Offset > 0 where a valid frame addressed to `unit` starts and runs to the end of buf,
    or 0 (none, or the frame is the whole buffer)."""
    for pos in range(max(1, len(buf) - 260), len(buf) - 3):
        if buf[pos] == unit and _crc16(buf[pos:-2]) == buf[-2] | buf[-1] << 8:
            return pos
    return 0


class _RtuSlaveHandler(ServerRequestHandler):
    gap = 0.005
    unit = 17
    delay = 0.0

    async def handle_request(self):
        pdu = self.last_pdu
        if pdu is not None and pdu.dev_id != self.unit:
            return
        if self.delay:
            await asyncio.sleep(self.delay)
            self.last_pdu = pdu  # answer this request, not one that arrived meanwhile
        await super().handle_request()

    def datagram_received(self, data, addr):
        now = time.monotonic()
        if self.recv_buffer and now - getattr(self, "_last_rx", now) > self.gap:
            self.recv_buffer = b""
        self._last_rx = now
        start = _frame_at_end(self.recv_buffer + data, self.unit)
        if start:
            data = (self.recv_buffer + data)[start:]
            self.recv_buffer = b""
        super().datagram_received(data, addr)


class FakeSerialServer(ModbusSerialServer):
    def callback_new_connection(self):
        return _RtuSlaveHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


def _read_all_waiting(transport):
    data = b""
    try:
        while len(data) < 4096:
            n = transport.sync_serial.in_waiting
            if not n:
                break
            data += transport.sync_serial.read(n)
    except serial.SerialException as exc:
        transport.close(exc=exc)
        return
    if data:
        transport.intern_protocol.data_received(data)


async def _only_holding(function_code, start_address, address, count, registers, values):
    """Coils, discrete inputs and input registers exist in pymodbus's model only because a
    SimDevice needs a block per table; every access to them answers exception 02."""
    if function_code not in HOLDING_FCS:
        return ExcCodes.ILLEGAL_ADDRESS
    return None


def device(unit):
    holding = [SimData(HOLDING_FIRST + i, values=1000 + HOLDING_FIRST + i, datatype=DataType.REGISTERS)
               for i in range(HOLDING_COUNT)]
    coils = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    inputs = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    input_regs = [SimData(0, count=1, datatype=DataType.INVALID)]
    return SimDevice(id=unit, simdata=(coils, inputs, holding, input_regs), action=_only_holding)


async def serve(args):
    if "://" in args.port:
        # pyserial's URL ports (rfc2217://, socket://) have no fileno for asyncio's add_reader:
        # pymodbus then polls, as it does on Windows.
        SerialTransport.force_poll = True
        # ... and reads one byte per 0.5 ms poll (pyserial's RFC 2217 read with timeout 0 stops
        # after one byte): too slow for a line carrying garbage at 4x the rate. Take all there is.
        SerialTransport.intern_read_ready = _read_all_waiting
        # pymodbus sets write_timeout = 0, which pyserial's RFC 2217 client refuses
        # (NotImplementedError); its writes go to a socket and never block long: ignore it.
        serial.rfc2217.Serial.write_timeout = property(lambda self: None, lambda self, value: None)
    bits = 1 + 8 + (0 if args.parity == "N" else 1) + args.stopbits
    _RtuSlaveHandler.gap = max(t35(args.baud, bits), 0.005)
    _RtuSlaveHandler.unit = args.unit
    _RtuSlaveHandler.delay = args.delay
    server = FakeSerialServer(
        device(args.unit), port=args.port, baudrate=args.baud, parity=args.parity,
        stopbits=args.stopbits, bytesize=8, ignore_missing_devices=True,
        identity=ModbusDeviceIdentification(info=IDENTITY), reconnect_delay=0.5)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.serve_forever(background=True)
    print("ready %s %d-8%s%d unit %d" % (args.port, args.baud, args.parity, args.stopbits, args.unit),
          flush=True)
    await stop.wait()
    await server.shutdown()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", required=True)
    p.add_argument("--baud", type=int, default=38400)
    p.add_argument("--parity", choices="NEO", default="O")
    p.add_argument("--stopbits", type=int, choices=(1, 2), default=1)
    p.add_argument("--unit", type=int, default=17)
    p.add_argument("--delay", type=float, default=0.0, help="seconds each answer waits (a slow device)")
    args = p.parse_args(argv)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
