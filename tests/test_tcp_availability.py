"""Modbus TCP availability: what one peer does with its connection must not stall or lock out
the others (issue 10, section 1). The real firmware (32-bit unix port, `mbnode sim`) against
raw sockets, pymodbus and mbpoll.

- Peers that never read their answers: the loop never waits for them. A well-behaved TCP client
  and the RTU line keep their reply times (p99 within 2x of the same test's unloaded baseline,
  with a small absolute floor for scheduler noise).
- Half-open peers (3 bytes of an MBAP header, then silence) and a flood of connects do not lock
  out regular pollers, and a poller's connection is never the one given up.
- TCP_NODELAY: two requests in one segment get both answers at once, not after the client's
  delayed ACK; TCP keepalive is on for every connection (seen in the kernel's socket table).
- Unit id 255 is this device on TCP by default (tcp.unit_255), and only when configured so.

The rules under test are documented in firmware/mbnode/tcp.py and docs/configuration.md.
"""

import os
import re
import select
import selectors
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import need, need_tool
from mbtest import (
    closed_within,
    connect,
    fc03,
    mbap,
    ok,
    pymodbus,
    pymodbus_client,
    read_adu,
    request,
    silent_for,
    unit,
)
from rtutest import RtuPort, adu, crc_ok

# A reply slower than this is noise on a busy machine, not a regression: the defects these
# tests reproduce cost 100 ms and more.
FLOOR_S = 0.010


def p99(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(0.99 * len(s)))]


def answered(sock, tid, pdu=None, timeout=3.0):
    """Send one FC03 request and check its answer (tid, unit 1, 3 registers' worth)."""
    sock.sendall(mbap(tid, 1, pdu or fc03(0, 1)))
    got_tid, got_unit, got = read_adu(sock, timeout)
    assert (got_tid, got_unit, got[:1]) == (tid, 1, b"\x03"), (tid, got_tid, got_unit, got)


# --- peers that never read ------------------------------------------------------------------


class NonReaders:
    """`n` peers that send requests for 125 registers (259-byte answers) and never read: each
    keeps pushing requests while its socket takes them, and connects again when the slave closes
    it. One thread, non-blocking sockets; `.cycles` counts the connections the slave has given up
    (or refused)."""

    BATCH = mbap(0x7777, 1, fc03(0, 125)) * 40

    def __init__(self, sim, n):
        self.addr = (sim.host, sim.port)
        self.n = n
        self.cycles = 0
        self.stopping = False
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "non-reading peers did not stop"

    def _connect(self, sel, i):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        s.setblocking(False)
        s.connect_ex(self.addr)
        sel.register(s, selectors.EVENT_WRITE, i)

    def _run(self):
        sel = selectors.DefaultSelector()
        try:
            for i in range(self.n):
                self._connect(sel, i)
            again = []  # (when, peer) to connect again
            while not self.stopping:
                for key, _ in sel.select(0.05):
                    s, i = key.fileobj, key.data
                    try:
                        s.send(self.BATCH)
                    except BlockingIOError:
                        continue
                    except OSError:  # reset or refused by the slave: connect again soon
                        sel.unregister(s)
                        s.close()
                        self.cycles += 1
                        again.append((time.monotonic() + 0.05, i))
                while again and again[0][0] <= time.monotonic():
                    self._connect(sel, again.pop(0)[1])
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = repr(e)
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()


def measure(sim, tcp, rtu, count, seconds, least=0.0):
    """(tcp round trips, rtu reply times), each measured in its own thread: requests 2 ms apart
    on TCP (a regular poller), back to back on RTU; until both have `count` and at least `least`
    seconds have passed, but for at most `seconds`. Every request must be answered."""
    samples = {"tcp": [], "rtu": []}
    errors = []
    start = time.monotonic()

    def more():
        elapsed = time.monotonic() - start
        short = len(samples["tcp"]) < count or len(samples["rtu"]) < count
        return (short or elapsed < least) and elapsed < seconds and not errors

    def on_tcp():
        got = samples["tcp"]
        while more():
            tid = (len(got) + 1) & 0xFFFF
            t0 = time.perf_counter()
            answered(tcp, tid, timeout=10)
            got.append(time.perf_counter() - t0)
            time.sleep(max(0.0, t0 + 0.002 - time.perf_counter()))

    def on_rtu():
        got = samples["rtu"]
        frame = adu(1, fc03(0, 1))
        while more():
            resp, took = rtu.request_frame(frame, timeout=10)
            assert resp and crc_ok(resp) and resp[:2] == b"\x01\x03", "RTU request %d: %r" % (len(got), resp)
            got.append(took)

    def run(f):
        try:
            f()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(f,), daemon=True) for f in (on_tcp, on_rtu)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(seconds + 30)
    assert not errors, errors
    return samples["tcp"], samples["rtu"]


def test_peers_that_never_read_do_not_stall_others(start_sim):
    need_tool("ss")
    # 16 slots: the polling client and 15 non-readers are connected at once, 5 more are refused
    # and try again. The polling client polls all along: one silent for a second would count as
    # stale when the slots are full, and be given up for a non-reader.
    sim = start_sim(rtu="pty", config={"tcp": {"max_clients": 16}})
    with connect(sim) as tcp, RtuPort(sim.rtu_path) as rtu:
        base_tcp, base_rtu = measure(sim, tcp, rtu, 300, 30)
        with NonReaders(sim, 20) as peers:
            # Over 6 s from their first connect: the non-readers get answers until those cannot
            # leave, are given up 2 s later, connect again, and so on. `stuck` counts the slave's
            # connections with answers the peer has not taken and requests left unread.
            stuck = []
            watching = threading.Event()

            def watch():
                while not watching.wait(0.2):
                    stuck.append(sum(1 for rq, sq in slave_ends(sim).values() if rq and sq))

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                load_tcp, load_rtu = measure(sim, tcp, rtu, 300, 20, least=6.0)
            finally:
                watching.set()
                watcher.join(10)
            assert peers.error is None, peers.error
            stuck = max(stuck or [0])
        more_tcp, more_rtu = measure(sim, tcp, rtu, 150, 30)
        base_tcp += more_tcp
        base_rtu += more_rtu
    summary = "TCP p99 %.1f ms -> %.1f ms, RTU p99 %.1f ms -> %.1f ms (%d, %d loaded samples)" % (
        p99(base_tcp) * 1e3, p99(load_tcp) * 1e3, p99(base_rtu) * 1e3, p99(load_rtu) * 1e3, len(load_tcp),
        len(load_rtu))
    summary += "; %d peers with answers waiting, %d connections given up or refused" % (stuck, peers.cycles)
    print(summary)
    assert len(load_tcp) >= 300 and len(load_rtu) >= 300, "too slow under load: " + summary
    assert p99(load_tcp) <= 2 * max(p99(base_tcp), FLOOR_S), summary
    assert p99(load_rtu) <= 2 * max(p99(base_rtu), FLOOR_S), summary
    assert stuck >= 10, "the non-readers never had answers waiting: " + summary


def slave_ends(sim):
    """{client port: (Recv-Q, Send-Q)} of the slave's established connections, from ss."""
    out = subprocess.run(["ss", "-tnH", "state", "established", "( sport = :%d )" % sim.port],
                         capture_output=True, text=True, timeout=10).stdout
    ends = {}
    for line in out.splitlines():
        f = line.split()
        ends[int(f[3].rsplit(":", 1)[1])] = (int(f[0]), int(f[1]))
    return ends


def non_reader(sim, count):
    """A connected socket that sent `count` requests for 125 registers and reads nothing; (socket,
    monotonic time just before the send)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.connect((sim.host, sim.port))
    t = time.monotonic()
    s.sendall(b"".join(mbap(i & 0xFFFF, 1, fc03(0, 125)) for i in range(count)))
    return s, t


def wait_unread(sim, sock, seconds=5.0):
    """Wait until the slave leaves requests of `sock` unread: its receive queue is not empty
    and unchanged over 0.3 s. Returns that queue's size, or 0 if it never happened."""
    port = sock.getsockname()[1]
    deadline = time.monotonic() + seconds
    before = None
    while time.monotonic() < deadline:
        now = slave_ends(sim).get(port, (0, 0))[0]
        if now and now == before:
            return now
        before = now
        time.sleep(0.3)
    return 0


def test_reply_pending_stops_reading_until_it_leaves(start_sim):
    """A peer that pipelines requests and does not read: once an answer cannot leave, the slave
    reads no more of its requests (they wait in its socket); others are served meanwhile; when
    the peer reads again, every answer arrives, in order, none dropped."""
    need_tool("ss")
    sim = start_sim()
    count = 2000  # 24 KB of requests, 518 KB of answers
    s, _ = non_reader(sim, count)
    try:
        assert wait_unread(sim, s), "the slave kept reading a peer that does not read its answers"
        with connect(sim) as other:
            answered(other, 1, timeout=1.0)
        for i in range(count):
            tid, u, pdu = read_adu(s, 5)
            assert (tid, u, pdu[:2], len(pdu)) == (i, 1, b"\x03\xfa", 252), "answer %d of %d" % (i, count)
        assert silent_for(s, 0.1)
        answered(s, 0x4444)
    finally:
        s.close()


def test_reply_that_cannot_leave_closes_after_the_send_limit(start_sim):
    """The connection of a peer whose answer has not left 2 s after it was made is closed; the
    slave serves others all along."""
    need_tool("ss")
    sim = start_sim()
    s, t_sent = non_reader(sim, 2000)
    try:
        assert wait_unread(sim, s), "the slave kept reading a peer that does not read its answers"
        poller = select.poll()
        poller.register(s, select.POLLRDHUP)  # a FIN or a reset; we never read a byte
        closed = None
        with connect(sim) as other:
            while time.monotonic() - t_sent < 10:
                answered(other, 1, timeout=1.0)
                if poller.poll(20):
                    closed = time.monotonic() - t_sent
                    break
        assert closed is not None, "a peer whose answers cannot leave was kept"
        assert closed >= 1.9, "closed %.2f s after its requests: before the send limit" % closed
    finally:
        s.close()


# --- half-open peers, floods ------------------------------------------------------------------


class Pollers:
    """Regular pollers: each connects (again while refused, for at most `join_s`), then sends
    `count` requests `interval` apart on that one connection, each answered within 3 s. Errors
    are collected, never retried."""

    def __init__(self, sim, n, count, interval, join_s=5.0, first_tid=0):
        self.sim = sim
        self.count = count
        self.interval = interval
        self.join_s = join_s
        self.errors = []
        self.joined = {}
        self.answered = [0] * n
        self.threads = [threading.Thread(target=self._run, args=(k, first_tid + k * 10000), daemon=True)
                        for k in range(n)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "pollers still running after %.0f s" % timeout

    def _join(self, k, tid):
        t0 = time.monotonic()
        while True:
            s = connect(self.sim)
            try:
                answered(s, tid, timeout=1.0)
                self.joined[k] = time.monotonic() - t0
                return s
            except (AssertionError, OSError):
                s.close()
                if time.monotonic() - t0 > self.join_s:
                    raise AssertionError("poller %d not served within %.0f s" % (k, self.join_s))
                time.sleep(0.05)

    def _run(self, k, tid):
        try:
            s = self._join(k, tid)
            with s:
                next_at = time.monotonic()
                for i in range(1, self.count + 1):
                    next_at += self.interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    answered(s, tid + i)
                    self.answered[k] += 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append("poller %d after %d answers: %r" % (k, self.answered[k], e))


class HalfOpen:
    """`n` peers that connect, send 3 bytes of an MBAP header and go silent; with `again`, each
    connects again when the slave closes it."""

    def __init__(self, sim, n, again=False):
        self.sim = sim
        self.again = again
        self.socks = [self._open() for _ in range(n)]
        self.closed = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _open(self):
        s = socket.create_connection((self.sim.host, self.sim.port), timeout=3)
        s.sendall(b"\x00\x01\x00")
        return s

    def _run(self):
        sel = selectors.DefaultSelector()
        for s in self.socks:
            sel.register(s, selectors.EVENT_READ)
        while not self.stopping:
            for key, _ in sel.select(0.05):
                s = key.fileobj
                try:
                    data = s.recv(64)
                except OSError:
                    data = b""
                assert not data, "a half-open peer got an answer %r" % data
                sel.unregister(s)
                s.close()
                self.closed += 1
                if self.again and not self.stopping:
                    try:
                        s = self._open()
                    except OSError:
                        continue
                    sel.register(s, selectors.EVENT_READ)
        for key in list(sel.get_map().values()):
            key.fileobj.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)


def test_half_open_peers_do_not_lock_out_pollers(start_sim):
    """Default slots (4, when_full refuse): four peers hold every slot with 3 bytes of a header;
    four regular pollers connecting after them are all served at once (in place of the silent
    peers, well before the 2 s partial-frame limit closes those), and every half-open connection
    is closed."""
    sim = start_sim()
    attackers = HalfOpen(sim, 4)
    try:
        pollers = Pollers(sim, 4, count=30, interval=0.05, join_s=5).start()
        pollers.join(30)
        assert not pollers.errors, pollers.errors
        assert pollers.answered == [30] * 4
        assert max(pollers.joined.values()) < 1.5, "pollers served only after %r s" % pollers.joined
        deadline = time.monotonic() + 5
        while attackers.closed < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert attackers.closed == 4, "half-open peers kept: %d of 4 closed" % attackers.closed
    finally:
        attackers.stop()


def test_half_open_peers_and_a_late_client(start_sim):
    """Five slots. Four half-open peers that reconnect whenever they are closed, four regular
    pollers, and a fifth regular client that connects later: all five are served, and no
    poller's connection is ever given up (each poller keeps its one connection)."""
    sim = start_sim(config={"tcp": {"max_clients": 5}})
    attackers = HalfOpen(sim, 4, again=True)
    try:
        pollers = Pollers(sim, 4, count=60, interval=0.05, join_s=5).start()
        deadline = time.monotonic() + 10
        while len(pollers.joined) < 4 and not pollers.errors and time.monotonic() < deadline:
            time.sleep(0.05)
        late = Pollers(sim, 1, count=20, interval=0.05, join_s=5, first_tid=50000).start()
        late.join(30)
        pollers.join(30)
        assert not pollers.errors and not late.errors, pollers.errors + late.errors
        assert pollers.answered == [60] * 4 and late.answered == [20]
    finally:
        attackers.stop()


def test_partial_request_closes_after_the_frame_limit(sim_pool):
    """A client that was served, then sends 3 bytes of a header and nothing more, is closed 2 s
    after that first byte (no slot pressure: the frame limit alone)."""
    sim = sim_pool(32)
    with connect(sim) as s:
        answered(s, 1)
        t0 = time.monotonic()
        s.sendall(b"\x00\x02\x00")
        assert closed_within(s, 6.0), "a partial request was kept"
        took = time.monotonic() - t0
    assert took >= 1.9, "closed %.2f s after the partial request's first byte" % took


def test_full_slots_give_up_a_poller_that_stopped(start_sim):
    """Four slots: three regular pollers, and a fourth client that polled every 50 ms and then
    fell silent (a PLC whose cable was pulled; its old connection stays half-open). A new
    connection right after it fell silent is refused: it is still a poller. Once it has been
    silent for more than 1 s and twice its interval, a new connection (the PLC reconnecting)
    takes its slot; the three pollers are never touched."""
    sim = start_sim()
    pollers = Pollers(sim, 3, count=100, interval=0.05).start()
    deadline = time.monotonic() + 10
    while len(pollers.joined) < 3 and not pollers.errors and time.monotonic() < deadline:
        time.sleep(0.05)
    plc = connect(sim)
    try:
        for tid in range(1, 11):
            answered(plc, tid)
            time.sleep(0.05)
        t_silent = time.monotonic()
        with connect(sim) as early:
            early.sendall(mbap(1, 1, fc03(0, 1)))
            assert closed_within(early, 1.0), "a new connection displaced a poller"
        assert time.monotonic() - t_silent < 1.0, "too slow to tell (the machine is stalled)"
        while time.monotonic() - t_silent < 1.2:
            time.sleep(0.05)
        with connect(sim) as again:
            answered(again, 1)
            assert closed_within(plc, 2.0), "the silent connection was not the one given up"
            answered(again, 2)
    finally:
        plc.close()
    pollers.join(30)
    assert not pollers.errors, pollers.errors
    assert pollers.answered == [100] * 3


def test_a_poller_that_reconnects_at_once_is_not_refused(start_sim):
    """Four slots, all polling: one poller closes its connection and connects again at once, 20
    times; it is served every time. To put the old connection's end and the new connection in
    the same poll round every time, the simulator is stopped (SIGSTOP) while the client closes
    and connects again, and continued after. Which of the two the firmware's poll reports first
    follows the descriptor numbers; tests/test_tcp_slots.py tries both orders."""
    sim = start_sim()
    pollers = Pollers(sim, 3, count=200, interval=0.02).start()
    deadline = time.monotonic() + 10
    while len(pollers.joined) < 3 and not pollers.errors and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pollers.joined) == 3, pollers.errors
    refused = []
    s = connect(sim)
    try:
        answered(s, 1)
        for k in range(20):
            group = os.getpgid(sim.proc.pid)
            os.killpg(group, signal.SIGSTOP)
            try:
                s.close()
                s = connect(sim)  # the kernel completes the handshake meanwhile
            finally:
                os.killpg(group, signal.SIGCONT)
            try:
                answered(s, 2 + k, timeout=3.0)
            except (AssertionError, OSError) as e:
                refused.append((k, repr(e)))
    finally:
        s.close()
    pollers.join(30)
    assert not refused, "reconnects refused: %s" % refused
    assert not pollers.errors, pollers.errors


class Flood:
    """Connects at `rate` per second from one thread (non-blocking connects); every other
    connection sends 3 bytes of an MBAP header. Each is closed by us after `hold` seconds
    unless the slave closed it first."""

    def __init__(self, sim, rate, seconds, hold=0.5):
        self.addr = (sim.host, sim.port)
        self.rate = rate
        self.seconds = seconds
        self.hold = hold
        self.made = 0
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        open_ = []
        try:
            t0 = time.monotonic()
            while True:
                now = time.monotonic()
                if now - t0 >= self.seconds:
                    break
                while open_ and now - open_[0][0] >= self.hold:
                    open_.pop(0)[1].close()
                due = int((now - t0) * self.rate) + 1
                while self.made < due:
                    s = socket.socket()
                    s.setblocking(False)
                    s.connect_ex(self.addr)
                    if self.made % 2:
                        try:
                            s.send(b"\x00\x01\x00")
                        except OSError:
                            pass  # not connected yet: then it stays silent
                    open_.append((now, s))
                    self.made += 1
                time.sleep(0.002)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = repr(e)
        finally:
            for _, s in open_:
                s.close()


def test_connect_flood_changes_nothing_for_pollers(start_sim):
    """200 connects per second for 30 s (half of them half-open) while three regular pollers
    poll every 20 ms and one slot is free for the flood to fight over: every poller request is
    answered within 3 s on the poller's one connection."""
    sim = start_sim()
    pollers = Pollers(sim, 3, count=1400, interval=0.02).start()
    deadline = time.monotonic() + 10
    while len(pollers.joined) < 3 and not pollers.errors and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pollers.joined) == 3, pollers.errors
    flood = Flood(sim, 200, 30).start()
    flood.thread.join(45)
    pollers.join(30)
    assert flood.error is None, flood.error
    assert flood.made >= 200 * 30 * 0.9, "the flood made only %d connects" % flood.made
    assert not pollers.errors, pollers.errors
    assert pollers.answered == [1400] * 3


# --- TCP options -------------------------------------------------------------------------------


def test_pipelined_requests_answered_without_waiting_for_an_ack(sim_pool):
    """Two requests in one segment, the client sending nothing else until both answers are in:
    with Nagle's algorithm on the slave, the second answer waits for the client's delayed ACK
    (40 ms or more on Linux) every time. 40 pairs must take well under one delayed ACK each."""
    sim = sim_pool(32)
    pair = mbap(1, 1, fc03(0, 1)) + mbap(2, 1, fc03(0, 2))
    with connect(sim) as s:
        t0 = time.monotonic()
        for _ in range(40):
            s.sendall(pair)
            assert read_adu(s)[0] == 1
            assert read_adu(s)[0] == 2
        took = time.monotonic() - t0
    assert took < 40 * 0.020, "40 pipelined pairs took %.0f ms" % (took * 1e3)


def test_connections_have_tcp_keepalive(sim_pool):
    """The slave's end of an accepted connection runs the keepalive timer (ss shows it)."""
    need_tool("ss")
    sim = sim_pool(32)
    with connect(sim) as s:
        answered(s, 1)
        port = s.getsockname()[1]
        out = subprocess.run(["ss", "-tnoH", "state", "established", "( sport = :%d and dport = :%d )" % (sim.port, port)],
                             capture_output=True, text=True, timeout=10).stdout
        assert out.strip(), "the slave's end of the connection not found by ss"
        assert "timer:(keepalive," in out, out


# --- unit id 255 ------------------------------------------------------------------------------


@pytest.fixture
def _pymodbus():
    need("pymodbus (pip install pymodbus)", pymodbus is not None)


def test_unit_255_is_this_device_by_default(sim_pool, _pymodbus):
    sim = sim_pool(32)
    with connect(sim) as s:
        assert request(s, fc03(0, 1), tid=0x0FF0, unit=255)[:2] == b"\x03\x02"
        # Other ids are still not this device.
        s.sendall(mbap(0x0FF1, 254, fc03(0, 1)) + mbap(0x0FF2, 0, fc03(0, 1)))
        assert silent_for(s, 0.3)
    with pymodbus_client(sim) as c:
        rr = ok(c.write_register(0x55, 0xFF, **unit(255)))
        assert ok(c.read_holding_registers(0x55, count=1, **unit(255))).registers == [0xFF]


def test_unit_255_with_mbpoll(sim_pool):
    exe = need_tool("mbpoll")
    sim = sim_pool(32)
    r = subprocess.run([exe, "-m", "tcp", "-p", str(sim.port), "-a", "255", "-0", "-1", "-o", "2", "-t", "4",
                        "-r", "0x56", sim.host, "--", "4660"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([exe, "-m", "tcp", "-p", str(sim.port), "-a", "255", "-0", "-1", "-o", "2", "-t", "4",
                        "-r", "0x56", sim.host], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and re.search(r"^\[86\]:\s+4660$", r.stdout, re.M), r.stdout + r.stderr


def test_unit_255_can_be_turned_off(start_sim, _pymodbus):
    sim = start_sim(config={"tcp": {"unit_255": False}})
    with connect(sim) as s:
        s.sendall(mbap(0x0FF0, 255, fc03(0, 1)))
        assert silent_for(s, 0.3), "unit 255 answered with tcp.unit_255 false"
        assert request(s, fc03(0, 1), tid=2, unit=1)[:2] == b"\x03\x02"


def test_unit_255_over_rtu_is_not_an_address(rtu_pool):
    """255 is not an RTU address: the RTU line does not answer it whatever tcp.unit_255 says."""
    sim = rtu_pool(32)
    with RtuPort(sim.rtu_path) as p:
        resp, _ = p.request_frame(adu(255, fc03(0, 1)), timeout=0.3)
        assert resp == b""
        assert p.request(fc03(0, 1))[:2] == b"\x03\x02"
