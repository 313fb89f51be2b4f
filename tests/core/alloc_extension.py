"""Proves the extension modules' paths allocation-free: run on the unix port.

The firmware's own loop, TCP slave, engine, extension modules and RTU master (on the pty handed
over as fd:N) run in this process; this script is the two modules on the pty's other end (unit 3:
16 DI, 130 AI; unit 4: 8 DO, 4 AO, 8 DI, offline after one miss) and a Modbus TCP client, and
answers each RTU request while the heap is locked (micropython.heap_lock: any allocation raises
MemoryError). Covers a poll cycle with a split FC04, a poll of the other module, write-throughs
(FC16, FC15, FC05) from a TCP client, a poll without answer that makes the module offline, a
read and a write of the offline module (0x0B at once), its return (outputs written, then its
inputs) and a write-through without answer (0x0B). One line per case, then "N passed, M failed".
"""

import binascii
import socket
import sys
import termios
import time

import board
import parts
from heaplock import Report, locked
from mbnode import startup, config, extension
from mbnode.crc import crc16
from mbnode.datamodel import DISCRETE_INPUTS, INPUT

FD = int(sys.argv[1])
DEVICE = sys.argv[2]
PORT = int(sys.argv[3])
TIMEOUT_MS = 150
STATUS = 0x1780  # module k's state at memory position 961 + 2k: registers 0x1780 + 4k


def rtu(hex_text):
    body = bytearray(binascii.unhexlify(hex_text.replace(" ", "")))
    c = crc16(body, 0, len(body))
    return bytes(body + bytearray([c & 0xFF, c >> 8]))


def mbap(pdu_hex):
    pdu = binascii.unhexlify(pdu_hex.replace(" ", ""))
    return bytes([0, 7, 0, 0, (len(pdu) + 1) >> 8, (len(pdu) + 1) & 0xFF, 1]) + pdu


def answer_for(req):
    """What the modules answer to an RTU request (start-up, not locked: may allocate)."""
    unit, fc = req[0], req[1]
    qty = (req[4] << 8) | req[5]
    if fc == 2:
        k = (qty + 7) // 8
        return rtu("%02x 02 %02x" % (unit, k) + "a5" * k)
    if fc == 4:
        return rtu("%02x 04 %02x" % (unit, 2 * qty) + "0101" * qty)
    return rtu(binascii.hexlify(req[:6]).decode())


ON, OFF = extension.ONLINE, extension.OFFLINE
CASES = [
    # (name, module 1's state before (None: as it is), module to poll (None: a TCP request), TCP
    #  request, the modules' answers in turn (None: silence), TCP answer length, its first two
    #  PDU bytes; for a poll: module 1's state after)
    ("poll: FC02, FC04 x125, FC04 x5", None, 0, None,
     [rtu("03 02 02 3c5a"), rtu("03 04 fa" + "1234" * 125), rtu("03 04 0a" + "4321" * 5)], 0, ON),
    ("poll: the other module, FC02", None, 1, None, [rtu("04 02 01 99")], 0, ON),
    ("TCP FC16 x4 written through", None, None, mbap("10 0040 0004 08 0001 0002 0003 0004"),
     [rtu("04 10 00c8 0004")], 12, b"\x10\x00"),
    ("TCP FC15 x8 written through", None, None, mbap("0f 0040 0008 01 a5"), [rtu("04 0f 0064 0008")], 12,
     b"\x0f\x00"),
    ("TCP FC05 written through", None, None, mbap("05 0047 ff00"), [rtu("04 0f 006b 0001")], 12, b"\x05\x00"),
    ("poll without answer: offline", ON, 1, None, [None], 0, OFF),
    ("TCP read of it: 0x0B", None, None, mbap("02 0050 0008"), [], 9, b"\x82\x0b"),
    ("TCP write to it: 0x0B", None, None, mbap("06 0041 0007"), [], 9, b"\x86\x0b"),
    ("its return: outputs, then inputs", OFF, 1, None,
     [rtu("04 0f 0064 0008"), rtu("04 10 00c8 0004"), rtu("04 02 01 66")], 0, ON),
    ("TCP write without answer: 0x0B", ON, None, mbap("06 0042 0009"), [None], 9, b"\x86\x0b"),
]

# The script's state is global: a closure over more than five variables allocates when called
# (MicroPython passes closed-over values with the arguments, on the heap beyond that).
loop = dev = client = ext = None
heard = bytearray(300)
resp = bytearray(300)


def steps(k, ms):
    for _ in range(k):
        loop.step(ms)


def busy():
    for m in ext.modules:
        if m.txn.busy:
            return True
    for job in ext.jobs:
        if job.busy:
            return True
    return False


def hear():
    """Wait (bounded) for the next RTU request on the line; its length."""
    for _ in range(200):
        n = dev.readinto(heard)
        if n:
            return n
        loop.step(2)
    return 0


def serve_case(module, req, answers):
    if module is not None:
        ext.modules[module].due = time.ticks_ms()  # its next cycle: now
    else:
        client.write(req)
    steps(3, 5)  # the request read, passed on
    for a in answers:
        hear()  # the RTU request (its bytes are not the point here)
        if a is not None:
            dev.write(a)
    for _ in range(100):  # until the last answer (or the timeout) has been taken
        if not busy():
            break
        loop.step(10)


def set_state(state):
    """Module 1 online or offline (its outputs then to be written), before a case's runs."""
    m = ext.modules[1]
    if (m.state == ON) != (state == ON):
        ext.offline += -1 if state == ON else 1
    m.state = state
    m.sync = state != ON
    m.misses = 0


def collect():
    time.sleep_ms(5)
    client.setblocking(False)
    n = client.readinto(resp) or 0
    client.setblocking(True)
    return n


def device_start():
    """Answer whatever the modules are asked at start-up (their first cycles)."""
    for _ in range(20):
        if not ext.offline and not busy():
            return
        n = hear()
        if n:
            dev.write(answer_for(bytes(heard[:n])))


def main():
    global loop, dev, client, ext
    cfg = config.validate({
        "tcp": {"host": "127.0.0.1", "port": PORT},
        "rtu": {"enabled": True, "mode": "master", "baud": 115200},
        "extension": {"modules": [
            {"unit": 3, "di": 16, "ai": 130, "period_ms": 3600000, "timeout_ms": TIMEOUT_MS},
            {"unit": 4, "do": 8, "do_address": 100, "ao": 4, "ao_address": 200, "di": 8, "period_ms": 3600000,
             "timeout_ms": TIMEOUT_MS, "misses": 1, "retry_ms": 3600000, "retry_max_ms": 3600000}]},
        "board": {"rtu_device": "fd:%d" % FD}}, *board.config_rules())
    made = parts.made(extension, "Extension")
    loop, ready = startup.build(cfg, board)
    ext = made[0]
    dev = open(DEVICE, "r+b")
    termios.setraw(dev.fileno())
    attrs = termios.tcgetattr(dev.fileno())
    attrs[6][5] = 0
    attrs[6][6] = 0
    termios.tcsetattr(dev.fileno(), termios.TCSANOW, attrs)
    device_start()
    client = socket.socket()
    client.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
    steps(5, 50)  # accept the client
    if ext.offline:
        print("the modules' first cycles were not all answered: %r"
              % [(m.state, m.sent, m.failed) for m in ext.modules])
        return 1
    model = ext.model
    report = Report(36)
    for name, before, module, req, answers, size, head in CASES:

        def serve():
            serve_case(module, req, answers)

        def send():
            if before is not None:
                set_state(before)

        err, n = locked(serve, collect, send)
        if module is None:
            ok = err is None and n == size and bytes(resp[7:9]) == head
        else:
            ok = err is None and n == 0 and model.get_reg(2, STATUS + 4 * module) == head
            if ok and module == 0:
                ok = (model.get_reg(INPUT, 0x40 + 124) == 0x1234 and model.get_reg(INPUT, 0x40 + 129) == 0x4321
                      and model.get_bit(DISCRETE_INPUTS, 0x42) == 1 and model.get_bit(DISCRETE_INPUTS, 0x40) == 0)
        report.line(name, ok, err, n, resp[7:9])
    return report.finish()


sys.exit(1 if main() else 0)
