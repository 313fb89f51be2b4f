# MicroPython script for the rp2 port: micropython-modbus 2.3.7 (`umodbus`) as a Modbus RTU slave
# on a Raspberry Pi Pico, the reference of bench/mcu.py. It runs on the stock firmware with the
# umodbus package copied to the board as .mpy; umodbus itself is unchanged.
#
# The bench copies this file to the board compiled as umodbus_bench.mpy, with a main.py of two
# lines that calls serve(), and a bench.json with the line settings:
#     {"baud": 19200, "parity": "E", "stop": 1}
# serve() builds the slave as the RTU example of umodbus's README does: ModbusRTU on UART0 (TX
# GP0, RX GP1) with the RS-485 driver enable on GP22, the register map below, then process() in a
# loop. It prints one line "ready umodbus rtu uart0 serial 19200-8E1 unit 1 ..." when it serves.
#
# The map has the shape of the unix-port bench's (bench/umodbus_server.py): 64 coils, 64
# discrete inputs, 128 holding and 128 input registers, all from address 0 (umodbus keeps one dict
# entry per address), so FC03 x125 and FC16 x123 are possible.
#
# Nothing here needed adapting for rp2 1.25: umodbus constructs machine.UART(0, baudrate=...,
# bits=8, parity=None|0|1, stop=1|2, tx=0, rx=1), which the rp2 port accepts as is (pin numbers
# for tx/rx, the default 256-byte receive buffer holds a whole frame), and Pin(22, mode=Pin.OUT).
import json

UNIT = 1
UART_ID = 0
PINS = (0, 1)  # TX GP0, RX GP1
DE_PIN = 22
PARITY = {"N": None, "E": 0, "O": 1}  # machine.UART's parity argument

REGISTERS = {
    "COILS": {"coils": {"register": 0, "val": [False] * 64}},
    "ISTS": {"dis": {"register": 0, "val": [False] * 64}},
    "HREGS": {"hregs": {"register": 0, "val": [0] * 128}},
    "IREGS": {"iregs": {"register": 0, "val": [0] * 128}},
}


def settings(path="bench.json"):
    """(baud, parity letter, stop bits) from the bench's file, 19200 8E1 without one."""
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError:
        cfg = {}
    baud, parity, stop = cfg.get("baud", 19200), cfg.get("parity", "E"), cfg.get("stop", 1)
    if parity not in PARITY or stop not in (1, 2):
        raise ValueError("bench.json: parity %r stop %r; allowed parity N, E, O and stop 1, 2" % (parity, stop))
    return baud, parity, stop


def build(baud, parity, stop):
    """The slave with its map, as umodbus's README sets one up."""
    from umodbus.serial import ModbusRTU

    slave = ModbusRTU(addr=UNIT, baudrate=baud, data_bits=8, stop_bits=stop, parity=PARITY[parity],
                      pins=PINS, ctrl_pin=DE_PIN, uart_id=UART_ID)
    slave.setup_registers(registers=REGISTERS)
    return slave


def serve():
    baud, parity, stop = settings()
    slave = build(baud, parity, stop)
    print("ready umodbus rtu uart%d serial %d-8%s%d unit %d de %d" % (UART_ID, baud, parity, stop, UNIT, DE_PIN))
    while True:
        slave.process()
