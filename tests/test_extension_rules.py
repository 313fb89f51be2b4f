"""Extension modules' rules (firmware/mbnode/extension.py, its configuration in extconfig.py) on
CPython, with a clock the test moves and a master the test answers: which requests go to which
module and when, where the answers land in the map, when a module is offline and what it then
answers, how a write is written through and answered. The same code runs end to end against
emulated and pymodbus modules in tests/test_extension_unix.py.

Each request a module gets is answered (or not) by the test, one at a time, in the order the
master would send them, and every one is accounted for: nothing is retried behind the test's back.
"""

import json
import sys

import pytest

from conftest import ROOT
from mbnode import config, extension
from mbnode.datamodel import COILS, DISCRETE_INPUTS, HOLDING, INPUT, DataModel
from mbnode.typenames import TABLE_NAMES
from mbnode.devid import DeviceIdentification
from mbnode.pdu import Engine
from mbnode.transaction import BAD, OK, TIMEOUT

sys.path.insert(0, str(ROOT / "tests" / "fakes"))
import tcpfakes  # noqa: E402

STATUS = 0x1780  # extension.status_position 961: module k's four registers at 0x1780 + 4k


class Clock(tcpfakes.Clock):
    def ticks_add(self, a, b):
        return a + b


class Line:
    """A master (RtuMaster / TcpLink stand-in): keeps what is submitted, in order."""

    def __init__(self):
        self.queue = []
        self.refuse = False

    def submit(self, txn):
        if self.refuse or txn.busy:
            return False
        txn.busy = True
        self.queue.append(txn)
        return True

    def sent(self):
        """(unit, request PDU hex) of everything waiting, oldest first."""
        return [(t.unit, bytes(t.pdu[t.off:t.off + t.n]).hex()) for t in self.queue]


class Masters:
    def __init__(self):
        self.line = Line()
        self.links = []

    def rtu(self, device):
        return self.line

    def first(self):
        return self.line

    def tcp(self):
        return self

    def link(self, queue):
        link = Line()
        link.target = lambda host, port: setattr(link, "where", (host, port))
        self.links.append(link)
        return link


class Loop:
    def add_timer(self, timer):
        self.timer = timer


class Waiter:
    """A transport waiting for an answer that comes later (pdu.PENDING)."""

    def __init__(self):
        self.answers = []

    def finish(self, status, buf, o, n):
        assert status == OK
        self.answers.append(bytes(buf[o:o + n]).hex())


class World:
    def __init__(self, monkeypatch, modules, rtu=True, **ext):
        self.clock = Clock(10_000)
        monkeypatch.setattr(extension, "time", self.clock)
        given = {"extension": dict(ext, modules=modules)}
        if rtu:
            given["rtu"] = {"enabled": True, "mode": "master"}
        self.cfg = config.validate(given)
        self.model = DataModel()
        self.model.set_present([self.cfg["channels"][n] for n in TABLE_NAMES])
        self.engine = Engine(self.model, DeviceIdentification(self.cfg["identity"], 1))
        self.masters = Masters()
        self.line = self.masters.line
        self.loop = Loop()
        self.ext = extension.Extension(self.loop, self.model, self.masters, self.cfg["extension"])
        self.engine.remote = self.ext
        self.written = []
        self.model.subscribe(lambda t, f, c: self.written.append((t, f, c)))

    def tick(self, ms=0):
        self.clock.now += ms
        if self.ext.due_in(self.clock.now) == 0:
            self.ext.tick(self.clock.now)

    def answer(self, pdu_hex, line=None):
        """The oldest request waiting is answered with this PDU."""
        line = line or self.line
        txn = line.queue.pop(0)
        pdu = bytearray.fromhex(pdu_hex)
        txn.finish(OK, pdu, 0, len(pdu))

    def fail(self, status=TIMEOUT, line=None):
        line = line or self.line
        line.queue.pop(0).finish(status, None, 0, 0)

    def request(self, pdu_hex, waiter=None):
        """The Engine's answer: (its return value, the answer PDU hex when it answered now)."""
        req = bytearray.fromhex(pdu_hex) + bytearray(8)
        resp = bytearray(260)
        n = self.engine.handle(req, 0, len(req) - 8, resp, 0, waiter)
        return n, bytes(resp[:n]).hex()

    def status(self, k):
        return [self.model.get_reg(HOLDING, STATUS + 4 * k + i) for i in range(4)]


def io(monkeypatch, **kw):
    """Module 3 (16 DI, 8 AI) and module 4 (4 DO at 100, 2 AO at 200, 8 DI)."""
    mods = [dict({"unit": 3, "di": 16, "ai": 8}, **kw),
            dict({"unit": 4, "do": 4, "do_address": 100, "ao": 2, "ao_address": 200, "di": 8}, **kw)]
    return World(monkeypatch, mods)


def online(w):
    """Start-up: every module's first cycle answered (module 4 first has its outputs written)."""
    w.tick()  # each module has one request on its way at a time
    assert w.line.sent() == [(3, "0200000010"), (4, "0f0064000401" + "00")]
    w.answer("0202" + "3412")
    assert w.line.sent()[-1] == (3, "0400000008")
    w.answer("0f00640004")
    assert w.line.sent()[-1] == (4, "1000c800020400000000")
    w.answer("0410" + "".join("%04x" % (100 + i) for i in range(8)))
    w.answer("1000c80002")
    assert w.line.sent() == [(4, "0200000008")]
    w.answer("020155")
    assert w.line.sent() == [] and w.ext.offline == 0


# --- configuration -------------------------------------------------------------------------


def test_modules_fill_the_extension_ranges_in_order_and_nothing_else_is_there():
    cfg = config.validate({"rtu": {"enabled": True, "mode": "master"}, "extension": {"modules": [
        {"unit": 3, "di": 16, "ai": 8}, {"unit": 4, "do": 4, "ao": 2, "di": 8}]}})
    assert cfg["channels"]["discrete_inputs"] == [(0, 0x3F), (0x40, 0x40 + 24 - 1)]
    assert cfg["channels"]["input_registers"] == [(0, 0x3F), (0x40, 0x47), (0x1000, 0x17FF)]
    assert cfg["channels"]["coils"] == [(0, 0x3F), (0x40, 0x43)]
    assert cfg["channels"]["holding_registers"] == [(0, 0x3F), (0x40, 0x41), (0x1000, 0x17FF)]
    again = config.validate(json.loads(json.dumps(cfg)))  # a checked configuration checks again unchanged
    assert again.pop("mqtt")["enabled"] is cfg.pop("mqtt")["enabled"] is False  # its defaults come in
    assert json.loads(json.dumps(again)) == json.loads(json.dumps(cfg))


@pytest.mark.parametrize("given, message", [
    ({"modules": [{"unit": 3}]}, "config: extension.modules[0]: a module without channels"),
    ({"modules": [{"unit": 3, "di": 8, "colour": 1}]}, "config: extension.modules[0].colour = 1: unknown key"),
    ({"modules": [{"unit": 0, "di": 8}]}, "config: extension.modules[0].unit = 0: allowed 1..247 on a serial line"),
    ({"modules": [{"unit": 3, "ai": 300}]}, "config: extension.modules[0].ai = 300: allowed an integer 0..256"),
    ({"modules": [{"unit": 3, "ai": 200}, {"unit": 4, "ai": 57}]},
     "config: extension.modules: AI channels add up to 257: allowed at most 256 in all (extension AI 0x0040-0x013F)"),
    ({"modules": [{"unit": 3, "di": 8, "di_address": 65530}]},
     "config: extension.modules[0].di_address = 65530: allowed 0..65528"),
    ({"modules": [{"unit": 3, "di": 8, "retry_ms": 5000, "retry_max_ms": 1000}]},
     "config: extension.modules[0].retry_max_ms = 1000: allowed 5000..3600000"),
    ({"modules": [{"unit": 3, "di": 8}], "status_position": 1024},
     "config: extension.status_position = 1024: allowed 1..1023 for 1 modules"),
    ({"modules": {"unit": 3}},
     "config: extension.modules = {\"unit\": 3}: allowed a list of at most 32 module objects"),
])
def test_bad_modules_are_refused_on_one_line(given, message):
    with pytest.raises(config.ConfigError) as e:
        config.validate({"rtu": {"enabled": True, "mode": "master"}, "extension": given})
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_a_module_on_the_serial_line_needs_the_line_in_master_role():
    with pytest.raises(config.ConfigError, match=r'extension.modules\[0\].tcp = "": a module on a serial line '
                                                 r'needs a line \(rtu or rtu2\) enabled in "master" mode'):
        config.validate({"extension": {"modules": [{"unit": 3, "di": 8}]}})
    with pytest.raises(config.ConfigError, match=r'extension.modules\[0\].line = "bus": no serial line in master '
                                                 r'mode has that name; allowed "rs485"'):
        config.validate({"rtu": {"enabled": True, "mode": "master"},
                         "extension": {"modules": [{"unit": 3, "di": 8, "line": "bus"}]}})
    cfg = config.validate({"extension": {"modules": [{"unit": 0, "di": 8, "tcp": "127.0.0.1:502"}]}})
    assert cfg["extension"]["modules"][0]["unit"] == 0  # over TCP any unit id


# --- polling ---------------------------------------------------------------------------------


def test_inputs_land_in_the_map_in_wire_format_and_absent_channels_answer_02(monkeypatch):
    w = io(monkeypatch)
    online(w)
    assert w.request("0200400018")[1] == "0203" + "341255"  # module 3's 16 DI, then module 4's 8
    assert w.request("0400400008")[1] == "0410" + "".join("%04x" % (100 + i) for i in range(8))
    assert w.request("0400480001")[1] == "8402"  # no module's AI
    assert w.request("0200580001")[1] == "8202"
    assert w.request("0100440001")[1] == "8102"
    assert w.request("0300420001")[1] == "8302"
    assert w.request("0600420001")[1] == "8602"
    assert w.status(0) == [1, 0, 2, 0] and w.status(1) == [1, 0, 3, 0]


def test_polls_come_every_period_from_the_start_of_the_cycle(monkeypatch):
    w = io(monkeypatch, period_ms=100)
    online(w)
    w.tick(60)
    assert w.line.sent() == []
    w.tick(40)
    assert w.line.sent() == [(3, "0200000010"), (4, "0200000008")]  # module 4's outputs are in line


def test_reads_are_split_at_125_registers(monkeypatch):
    w = World(monkeypatch, [{"unit": 9, "ai": 256, "ai_address": 1000}])
    w.tick()
    assert w.line.sent() == [(9, "0403e8007d")]
    w.answer("04fa" + "0001" * 125)
    assert w.line.sent() == [(9, "040465007d")]
    w.answer("04fa" + "0002" * 125)
    assert w.line.sent() == [(9, "0404e20006")]
    w.answer("040c" + "0003" * 6)
    assert w.ext.offline == 0
    assert w.request("0401380004")[1] == "0408" + "0002" * 2 + "0003" * 2


@pytest.mark.parametrize("bad", ["020100", "0202ffff00", "8402", "03020000"])
def test_an_answer_that_does_not_fit_is_a_miss(monkeypatch, bad):
    """Wrong byte count, too long, an exception, another function: the cycle stops, counted."""
    w = World(monkeypatch, [{"unit": 3, "di": 16, "misses": 2}])
    w.tick()
    w.answer(bad)
    assert w.line.sent() == []  # never asked again at once
    assert w.status(0) == [0, 1, 1, 1]
    assert w.request("0200400001")[1] == "820b"  # not answered yet: 0x0B


# --- offline and back ----------------------------------------------------------------------------


def test_after_n_misses_a_module_is_offline_and_retried_with_back_off(monkeypatch):
    w = World(monkeypatch, [{"unit": 3, "di": 8, "period_ms": 100, "misses": 3, "retry_ms": 500,
                             "retry_max_ms": 1500}, {"unit": 4, "di": 8, "period_ms": 100}])
    w.tick()
    w.answer("020101")
    w.answer("020102")
    assert w.request("0200400010")[1] == "02020102"
    for k in range(3):  # three polls in a row without an answer, one per period
        w.tick(100)
        assert w.line.sent() == [(3, "0200000008"), (4, "0200000008")]
        w.fail()
        w.answer("020104")
        assert w.status(0)[:2] == [1 if k < 2 else 2, k + 1]
    assert w.request("0200400008")[1] == "820b"  # module 3's channels
    assert w.request("0200480008")[1] == "020104"  # module 4's are served
    assert w.request("0200400010")[1] == "820b"  # a request spanning both
    sent = []
    for _ in range(40):  # 4 s: retries 500, 1000, 1500, 1500 ms after each failure
        w.tick(100)
        for unit, pdu in w.line.sent():
            if unit == 3:
                sent.append(w.clock.now)
                w.fail()
            else:
                w.answer("020104")
    start = 10_000 + 300
    assert sent == [start + 500, start + 1500, start + 3000]
    assert w.status(0) == [2, 6, 7, 6]


def test_a_module_that_comes_back_gets_its_outputs_first_then_is_online(monkeypatch):
    w = World(monkeypatch, [{"unit": 4, "do": 3, "ai": 1, "misses": 1, "retry_ms": 200}])
    w.tick()
    w.answer("0f00000003")
    w.answer("04020007")
    assert w.request("0f004000030105") == (5, "0f00400003")  # no waiter: sent, answered as done
    assert w.line.sent() == [(4, "0f0000000301" + "05")]
    w.answer("0f00000003")
    w.tick(100)
    w.fail()  # offline
    assert w.request("0100400003")[1] == "810b"
    assert w.request("0f004000030107", Waiter())[1] == "8f0b"
    w.tick(200)
    assert w.line.sent() == [(4, "0f0000000301" + "05")]  # the outputs as the map has them
    w.answer("0f00000003")
    assert w.line.sent() == [(4, "0400000001")]
    assert w.status(0)[0] == 2  # online only once the whole cycle has answered
    w.answer("04020009")
    assert w.status(0)[:2] == [1, 0]
    assert w.request("0100400003")[1] == "010105"
    assert w.request("0400400001")[1] == "04020009"


def test_a_module_without_inputs_has_its_outputs_written_every_period(monkeypatch):
    w = World(monkeypatch, [{"unit": 5, "ao": 2, "period_ms": 50}])
    for _ in range(3):
        w.tick(50)
        assert w.line.sent() == [(5, "100000000204" + "00000000")]
        w.answer("1000000002")
    assert w.status(0) == [1, 0, 3, 0]


# --- writes through ---------------------------------------------------------------------------------


def test_a_write_waits_for_the_module_and_lands_when_it_answered(monkeypatch):
    w = io(monkeypatch)
    online(w)
    tcp = Waiter()
    assert w.request("10004000020400070008", tcp) == (0, "")  # PENDING
    assert w.line.sent() == [(4, "1000c8000204" + "00070008")]
    assert w.request("0300400002")[1] == "030400000000"  # not yet: the map holds what is confirmed
    w.answer("1000c80002")
    assert tcp.answers == ["1000400002"]
    assert w.request("0300400002")[1] == "030400070008"
    assert (HOLDING, 0x40, 2) in w.written


def test_a_write_spanning_onboard_and_module_channels(monkeypatch):
    w = io(monkeypatch)
    online(w)
    tcp = Waiter()
    assert w.request("0f003e0004010f", tcp)[0] == 0  # coils 0x3E-0x41: two onboard, two module 4's
    assert w.model.get_bit(COILS, 0x3E) == 1 and w.model.get_bit(COILS, 0x3F) == 1  # at once
    assert w.line.sent() == [(4, "0f0064000201" + "03")]
    w.answer("0f00640002")
    assert tcp.answers == ["0f003e0004"]
    assert w.request("01003e0006")[1] == "01010f"


def test_a_write_over_two_modules_goes_to_each_in_turn(monkeypatch):
    w = World(monkeypatch, [{"unit": 3, "ao": 2, "ao_address": 10, "ai": 1},
                            {"unit": 4, "ao": 3, "ao_address": 20, "ai": 1}])
    w.tick()
    assert w.line.sent() == [(3, "10000a000204" + "00000000"), (4, "1000140003" + "06" + "000000000000")]
    for pdu in ("10000a0002", "1000140003", "0402000a", "0402000b"):
        w.answer(pdu)
    assert w.ext.offline == 0
    tcp = Waiter()
    assert w.request("100041000306" + "0001" "0002" "0003", tcp)[0] == 0
    assert w.line.sent() == [(3, "10000b000102" + "0001")]
    w.answer("10000b0001")
    assert w.line.sent() == [(4, "10001400020400020003")]
    w.answer("1000140002")
    assert tcp.answers == ["1000410003"]
    assert w.request("0300400005")[1] == "030a" + "0000" "0001" "0002" "0003" "0000"


@pytest.mark.parametrize("outcome, answer", [
    (lambda w: w.fail(), "900b"),  # no answer: 0x0B
    (lambda w: w.fail(BAD), "900b"),  # only malformed answers: 0x0B
    (lambda w: w.answer("9002"), "9004"),  # the module's exception: 04
])
def test_a_write_the_module_does_not_take_is_answered_with_an_exception(monkeypatch, outcome, answer):
    w = io(monkeypatch)
    online(w)
    tcp = Waiter()
    w.request("10004000020400070008", tcp)
    outcome(w)
    assert tcp.answers == [answer]
    assert w.request("0300400002")[1] == "030400000000"  # the map keeps what the module has
    assert w.status(1) == [1, 1, 4, 1]  # one miss counted; not yet offline (misses 3)


def test_a_write_to_an_offline_module_is_0b_at_once_and_nothing_is_sent(monkeypatch):
    w = io(monkeypatch, misses=1)
    online(w)
    w.tick(100)
    w.answer("02020000")
    w.fail()  # module 4's poll
    w.answer("0410" + "0000" * 8)
    assert w.status(1)[0] == 2
    for pdu, answer in (("0600400007", "860b"), ("050040ff00", "850b"), ("10004000020400070008", "900b"),
                        ("0f00400001010f", "8f0b")):
        assert w.request(pdu, Waiter()) == (2, answer)
    w.tick(50)
    assert w.line.sent() == []


def test_single_writes_mask_write_and_read_write_go_through_too(monkeypatch):
    w = io(monkeypatch)
    online(w)
    for req, sent, echo in [
        ("050041ff00", (4, "0f0065000101" + "01"), "0f00650001"),  # coil 0x41: the module's 101
        ("0600410102", (4, "1000c9000102" + "0102"), "1000c90001"),  # AO 0x41: its register 201
        ("16004100f0000f", (4, "1000c9000102" + "000f"), "1000c90001"),  # (0x0102 & 0xF000) | 0x000F
    ]:
        tcp = Waiter()
        assert w.request(req, tcp) == (0, "")
        assert w.line.sent() == [sent]
        w.answer(echo)
        assert tcp.answers == [req]
    tcp = Waiter()
    assert w.request("17004000020040000102aaaa", tcp)[0] == 0  # FC23: write 0x40, read 0x40-0x41
    assert w.line.sent() == [(4, "1000c8000102aaaa")]
    w.answer("1000c80001")
    assert tcp.answers == ["1704aaaa000f"]


def test_a_transport_that_gave_up_gets_nothing_and_the_write_still_lands(monkeypatch):
    w = io(monkeypatch)
    online(w)
    tcp = Waiter()
    w.request("0600400009", tcp)
    w.engine.forget(tcp)
    w.answer("1000c80001")
    assert tcp.answers == []
    assert w.request("0300400001")[1] == "03020009"


def test_writes_beyond_the_jobs_are_busy_06(monkeypatch):
    w = World(monkeypatch, [{"unit": 4, "ao": 1, "di": 1}], writes=2)
    w.tick()
    w.answer("1000000001")
    w.answer("020101")
    waiters = [Waiter() for _ in range(3)]
    assert [w.request("0600400001", x)[1] for x in waiters] == ["", "", "8606"]
    w.answer("1000000001")
    w.answer("1000000001")
    assert [x.answers for x in waiters[:2]] == [["0600400001"], ["0600400001"]]


def test_the_outputs_are_not_rewritten_from_the_map_while_a_write_is_on_its_way(monkeypatch):
    """An output-only module's poll writes its outputs from the map; with a write-through queued
    before it, the poll's older values would overtake the new ones on the module."""
    w = World(monkeypatch, [{"unit": 5, "ao": 1, "period_ms": 50}])
    w.tick()
    w.answer("1000000001")
    tcp = Waiter()
    w.request("0600400042", tcp)
    w.tick(50)
    assert w.line.sent() == [(5, "1000000001020042")]  # the write only
    w.answer("1000000001")
    w.tick(50)
    assert w.line.sent() == [(5, "1000000001020042")]  # now the poll, with the new value


def test_a_module_over_tcp_has_a_link_of_its_own(monkeypatch):
    w = World(monkeypatch, [{"unit": 0, "tcp": "127.0.0.1:1502", "di": 4}, {"unit": 255, "tcp": "127.0.0.1:1503",
                                                                             "ai": 1}], rtu=False)
    assert [link.where for link in w.masters.links] == [("127.0.0.1", 1502), ("127.0.0.1", 1503)]
    w.tick()
    assert w.line.sent() == []
    assert w.masters.links[0].sent() == [(0, "0200000004")] and w.masters.links[1].sent() == [(255, "0400000001")]
    w.answer("02010f", w.masters.links[0])
    w.fail(line=w.masters.links[1])
    assert w.request("0200400004")[1] == "02010f"
    assert w.request("0400400001")[1] == "840b"


def test_the_rtu_slave_sends_a_late_answer_or_drops_it_when_the_line_was_used():
    """rtu.RtuServer with a waiter (the link): a write to module outputs is not answered at
    once (serve returns 0, waiting); late() makes the reply frame, with the line's counters;
    drop() (bytes came meanwhile) forgets it and counts the request as not answered."""
    from mbnode.diag import LineDiagnostics
    from mbnode.rtu import RtuServer

    sys.path.insert(0, str(ROOT / "tests" / "fakes"))
    from modbus_crc import crc16

    class Remote:
        offline = 0
        forgotten = []

        def claims(self, table, first, qty):
            return first >= 0x40

        def write(self, *args):
            return 0

        def forget(self, waiter):
            self.forgotten.append(waiter)

    def frame(hex_text):
        body = bytes.fromhex(hex_text)
        c = crc16(body)
        return bytearray(body + bytes((c & 0xFF, c >> 8)))

    model = DataModel()
    engine = Engine(model, DeviceIdentification(config.validate({})["identity"], 1))
    engine.remote = Remote()
    diag = LineDiagnostics()
    server = RtuServer(engine, diag, 1)
    link = object()
    server.waiter = link
    tx = bytearray(256)
    req = frame("01 06 0040 1234")
    assert server.serve(req, 0, len(req), tx) == 0 and server.waiting == 6
    n = server.late(bytearray.fromhex("0600401234"), 0, 5, tx)
    assert bytes(tx[:n]) == bytes(req)  # the echo, with its CRC
    assert server.waiting == 0 and diag.noresp == 0 and diag.events == 1
    assert server.serve(req, 0, len(req), tx) == 0
    server.drop()
    assert engine.remote.forgotten == [link] and diag.noresp == 1 and server.waiting == 0
    assert server.serve(frame("00 06 0040 1234"), 0, 8, tx) == 0 and server.waiting == 0  # broadcast: no waiter
    n = server.serve(frame("01 06 0010 0001"), 0, 8, tx)  # an onboard write is answered at once
    assert n == 8 and server.waiting == 0
