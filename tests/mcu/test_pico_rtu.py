"""mbnode on the emulated Pico, served to pymodbus (a real RTU master, no retries) on UART0 through
the runner's model of the RP2040 UART: bytes paced at the baud rate, the receive interrupt at
FIFO level 4 or after 32 bit times of quiet, the transmitter busy until the last stop bit.

Each test runs on four boards: mbnode deployed onto the stock MicroPython firmware with `mbnode
deploy`, and the `mbnode build --image` firmware with a config.json; each at 19200 8E1 and at
115200 8N2. The configuration makes every channel of the seed RTU's map present, so each
function code can be asked for its largest quantity. Every request is counted: one without an
answer fails its test (docs/mcu-emulation.md).
"""

import random
import struct
import time

import pytest

from mbnode import VERSION
from picotest import DE_PIN, DI_PINS, DO_PINS, Master, board_config, deployed, image_pico, image_uf2, line_settings
from rtutest import adu, hx

KINDS = [("deployed", 19200, "E"), ("deployed", 115200, "N"), ("image", 19200, "E"), ("image", 115200, "N")]
QUIET_MS = 30  # simulated ms after a frame that must go unanswered (t3.5 is 2 ms at 19200)


class Node:
    """A Pico with mbnode serving RTU, a counting master on its line, and its settings."""

    def __init__(self, pico, ready, cfg):
        self.pico = pico
        self.ready = ready
        self.cfg = cfg
        self.baud, self.parity, self.stopbits = line_settings(cfg)
        self.master = Master(pico, self.baud, self.parity, self.stopbits)

    def close(self):
        self.master.close()
        self.pico.stop()


@pytest.fixture(scope="module", params=KINDS, ids=["%s-%d" % (k, b) for k, b, _ in KINDS])
def node(request, tmp_path_factory):
    kind, baud, parity = request.param
    tmp = tmp_path_factory.mktemp("%s-%d" % (kind, baud))
    cfg = board_config(baud, parity, full_map=True)
    if kind == "deployed":
        pico, r = deployed(tmp, cfg)
        ready = "ready " + r.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    else:
        pico, ready = image_pico(tmp, image_uf2(tmp_path_factory), cfg)
    n = Node(pico, ready, cfg)
    yield n
    n.close()


def ok(r):
    assert not r.isError(), r
    return r


def exception_code(r):
    assert r.isError(), r
    return r.exception_code


def send_unanswered(node, frame):
    """Put a raw frame on the line and prove no reply comes: QUIET_MS of simulated time after its
    last byte without a character from the board."""
    pico = node.pico
    _, since = pico.uart_trace()
    pico.uart_send(frame)

    def sent():
        entries, _ = pico.uart_trace(since)
        host = [e for e in entries if e["dir"] == "host"]
        if len(host) < len(frame):
            return None
        return host[-1]["end_ns"]

    end = pico.wait_for(sent, 30, "the frame on the line")
    pico.wait_for(lambda: pico.sim_ns() > end + QUIET_MS * 1e6, 30, "%d ms of quiet" % QUIET_MS)
    entries, _ = pico.uart_trace(since)
    return [e for e in entries if e["dir"] == "tx"] == []


def test_line_settings_as_configured(node):
    words = node.ready.split()
    assert words[1:5] == ["rtu", "uart0", "serial", "%d-8%s%d" % (node.baud, node.parity, node.stopbits)], node.ready
    dev = node.pico.uart()["device"]
    assert (dev["bits"], dev["parity"], dev["stop"]) == (8, node.parity, node.stopbits)
    # The divisor of the 48 MHz UART clock gives the nearest rate (115177 for 115200): well inside
    # the 2% a UART tolerates.
    assert abs(dev["baud"] - node.baud) <= node.baud // 200, dev


def test_every_function_code(node):
    m = node.master
    # Bits: FC15, FC05, FC01; the onboard coils drive the DO pins.
    pattern = [i % 3 == 0 for i in range(20)]
    ok(m.write_coils(0x30, pattern, device_id=1))
    assert ok(m.read_coils(0x30, count=20, device_id=1)).bits[:20] == pattern
    ok(m.write_coil(0x31, True, device_id=1))
    assert ok(m.read_coils(0x30, count=3, device_id=1)).bits[:3] == [True, True, False]
    # Registers: FC06, FC16, FC03, FC22, FC23; FC04 reads the inputs.
    ok(m.write_register(0x0001, 0x3FF, device_id=1))
    values = [(0x1111 * i) & 0xFFFF for i in range(1, 11)]
    ok(m.write_registers(0x1000, values, device_id=1))
    assert ok(m.read_holding_registers(0x1000, count=10, device_id=1)).registers == values
    assert ok(m.read_holding_registers(0x0001, count=1, device_id=1)).registers == [0x3FF]
    ok(m.write_register(0x100, 0x12, device_id=1))
    ok(m.mask_write_register(address=0x100, and_mask=0xF2, or_mask=0x25, device_id=1))
    assert ok(m.read_holding_registers(0x100, count=1, device_id=1)).registers == [0x17]  # the spec's example
    rr = ok(m.readwrite_registers(read_address=0x1000, read_count=4, write_address=0x1002, values=[7, 8],
                                  device_id=1))
    assert rr.registers == values[:2] + [7, 8]
    assert len(ok(m.read_input_registers(0x0000, count=3, device_id=1)).registers) == 3
    assert len(ok(m.read_discrete_inputs(0x0000, count=4, device_id=1)).bits) >= 4
    # Memory registers are the same words over FC03 and FC04.
    assert ok(m.read_input_registers(0x1000, count=2, device_id=1)).registers == values[:2]
    # Identification and the serial-line functions.
    info = ok(m.read_device_information(read_code=1, object_id=0, device_id=1)).information
    assert info == {0: b"mbnode", 1: b"MBN-1", 2: VERSION.encode()}
    assert ok(m.read_device_information(read_code=4, object_id=5, device_id=1)).information == {
        5: b"Raspberry Pi Pico"}  # ModelName, from the board's defaults
    assert ok(m.diag_query_data(msg=b"\x12\x34", device_id=1)).message == b"\x12\x34"
    assert ok(m.read_exception_status(device_id=1)).status == 0
    assert ok(m.diag_get_comm_event_counter(device_id=1)).count > 0
    log = ok(m.diag_get_comm_event_log(device_id=1))
    assert log.message_count > 0 and log.events
    rid = ok(m.report_device_id(device_id=1))
    assert rid.identifier.startswith(b"\x01\xff"), rid.identifier  # server id 1, running


def test_exceptions(node):
    m = node.master
    for a in (0x0240, 0x0FFF):
        assert exception_code(m.read_coils(a, count=1, device_id=1)) == 2, hex(a)
        assert exception_code(m.read_discrete_inputs(a, count=1, device_id=1)) == 2, hex(a)
    for a in (0x0140, 0x0FFF, 0x1800):
        assert exception_code(m.read_holding_registers(a, count=1, device_id=1)) == 2, hex(a)
        assert exception_code(m.read_input_registers(a, count=1, device_id=1)) == 2, hex(a)
    assert exception_code(m.write_registers(0x13F, [1, 2], device_id=1)) == 2
    assert exception_code(m.write_register(0x0000, 0x400, device_id=1)) == 3  # AO is 10-bit
    assert m.raw(hx("03 1000 007E")) == hx("83 03")  # 126 registers: over the limit
    assert m.raw(hx("0F 0000 07B1 F7") + bytes(247)) == hx("8F 03")  # 1969 coils
    assert exception_code(m.read_device_information(read_code=4, object_id=3, device_id=1)) == 2  # no VendorUrl
    assert exception_code(m.read_fifo_queue(address=0, device_id=1)) == 1  # FC24: not served


def test_largest_quantities(node):
    m = node.master
    rnd = random.Random(node.baud)
    regs = [rnd.getrandbits(16) for _ in range(123)]
    ok(m.write_registers(0x1100, regs, device_id=1))  # FC16 x123: 255-byte request frame
    got = ok(m.read_holding_registers(0x1100, count=125, device_id=1)).registers  # FC03 x125: 255-byte reply
    assert got[:123] == regs and len(got) == 125
    assert ok(m.read_input_registers(0x1100, count=125, device_id=1)).registers[:123] == regs
    bits = [bool(rnd.getrandbits(1)) for _ in range(0x240)]
    ok(m.write_coils(0, bits, device_id=1))  # FC15 with 0x240 coils: 81-byte request
    assert ok(m.read_coils(0, count=0x240, device_id=1)).bits[:0x240] == bits
    assert len(ok(m.read_discrete_inputs(0, count=0x240, device_id=1)).bits) >= 0x240
    rr = ok(m.readwrite_registers(read_address=0x1100, read_count=125, write_address=0x1200,
                                  values=regs[:121], device_id=1))  # FC23: 121 written, 125 read
    assert rr.registers[:123] == regs


def test_outputs_drive_pins_and_pins_drive_inputs(node):
    m, pico = node.master, node.pico
    ok(m.write_coils(0, [False] * 8, device_id=1))
    assert [pico.level(p) for p in DO_PINS] == [0] * 8
    ok(m.write_coil(0, True, device_id=1))
    assert [pico.level(p) for p in DO_PINS] == [1, 0, 0, 0, 0, 0, 0, 0]
    pattern = [1, 0, 1, 1, 0, 0, 1, 0]
    ok(m.write_coils(0, [bool(v) for v in pattern], device_id=1))
    assert [pico.level(p) for p in DO_PINS] == pattern
    # DI pins (pull-up) driven from outside: the next scan (20 ms) shows them in FC02.
    levels = [0, 1, 1, 0]
    for p, v in zip(DI_PINS, levels):
        pico.drive(p, v)
    for _ in range(200):  # bounded; each read is answered (counted), only the value may lag
        got = [int(b) for b in ok(m.read_discrete_inputs(0, count=4, device_id=1)).bits[:4]]
        if got == levels:
            break
        time.sleep(0.01)
    assert got == levels
    for p in DI_PINS:
        pico.drive(p, None)


def test_broadcast_writes_executed_unanswered(node):
    m = node.master
    assert send_unanswered(node, adu(0, hx("06 1300 4D42")))
    assert send_unanswered(node, adu(0, hx("10 1301 0002 04 0001 0002")))
    assert send_unanswered(node, adu(0, hx("03 1300 0001")))  # a broadcast read is not answered either
    assert ok(m.read_holding_registers(0x1300, count=3, device_id=1)).registers == [0x4D42, 1, 2]


def test_counters_match_the_traffic(node):
    m = node.master
    ok(m.diag_clear_counters(device_id=1))
    ok(m.read_holding_registers(0x1000, count=1, device_id=1))
    ok(m.read_coils(0, count=8, device_id=1))
    assert exception_code(m.read_coils(0x240, count=1, device_id=1)) == 2
    assert send_unanswered(node, adu(2, hx("03 0000 0001")))  # another slave
    assert send_unanswered(node, adu(0, hx("06 1310 0007")))  # broadcast write
    assert send_unanswered(node, adu(1, hx("03 0000 0001"), bad_crc=True))
    got = [ok(f(device_id=1)).message for f in (
        m.diag_read_bus_message_count, m.diag_read_bus_comm_error_count, m.diag_read_bus_exception_error_count,
        m.diag_read_device_message_count, m.diag_read_device_no_response_count, m.diag_read_bus_char_overrun_count)]
    # bus: 3 answered + another slave's + the broadcast + the read of 0B itself; comm errors: the
    # bad CRC; exceptions sent: 1; for us: 3 + broadcast + the reads of 0B, 0C, 0D, 0E; no
    # response: the broadcast.
    assert got == [3 + 1 + 1 + 1, 1, 1, 3 + 1 + 4, 1, 0]
    assert ok(m.read_holding_registers(0x1310, count=1, device_id=1)).registers == [7]


def test_de_rises_once_per_reply_and_falls_after_the_last_stop_bit(node):
    m, pico = node.master, node.pico
    _, since = pico.uart_trace()
    edges_before, edge_since = pico.edges(pins=[DE_PIN])
    for i in range(10):
        ok(m.write_register(0x1400 + i, i, device_id=1))
        ok(m.read_holding_registers(0x1400, count=1 + 12 * i, device_id=1))
    entries, _ = pico.uart_trace(since)
    edges, _ = pico.edges(since=edge_since, pins=[DE_PIN])
    # Replies: runs of tx characters; requests: runs of host characters.
    bursts = []
    for e in entries:
        if e["dir"] not in ("tx", "host"):
            continue
        if bursts and bursts[-1][0] == e["dir"]:
            bursts[-1][2] = e["end_ns"]
        else:
            bursts.append([e["dir"], e["start_ns"], e["end_ns"]])
    replies = [b for b in bursts if b[0] == "tx"]
    assert len(replies) == 20, bursts
    rises = [e["t_ns"] for e in edges if e["level"] == 1]
    falls = [e["t_ns"] for e in edges if e["level"] == 0]
    assert len(rises) == len(falls) == 20, edges
    for k, (_, start, end) in enumerate(replies):
        assert rises[k] <= start, "DE up before the first start bit of reply %d" % k
        assert falls[k] >= end, "DE down %.1f us before the last stop bit of reply %d" % ((end - falls[k]) / 1e3, k)
        later = [b[1] for b in bursts if b[0] == "host" and b[1] > end]
        if later:
            assert falls[k] < later[0], "DE still up when the next request began (reply %d)" % k


def test_300_write_read_pairs_with_idle_pauses(node):
    m = node.master
    rnd = random.Random(300 + node.baud)
    sent_before = m.sent
    for i in range(300):
        if i % 10 == 0:
            time.sleep(rnd.random() * 0.05)  # the line idles between a master's polls
        value = rnd.getrandbits(16)
        ok(m.write_register(0x1500 + i % 100, value, device_id=1))
        assert ok(m.read_holding_registers(0x1500 + i % 100, count=1, device_id=1)).registers == [value]
    assert m.sent - sent_before == 600 and m.answered == m.sent
