"""Small Modbus TCP helpers for the simulator tests: raw MBAP frames over plain sockets, a
pymodbus compatibility shim, and a bounded "was this connection closed?" probe.

Raw sockets are used wherever the test is about bytes on the wire (transaction id, unit id,
framing, no reply); pymodbus where a real master library is the point.
"""

import inspect
import os
import socket
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mbap(tid, unit, pdu, proto=0, length=None):
    """One Modbus TCP ADU; `length`/`proto` override the header fields (to build bad frames)."""
    if length is None:
        length = len(pdu) + 1
    return struct.pack(">HHHB", tid, proto, length, unit) + bytes(pdu)


def connect(sim, timeout=3.0, nodelay=True):
    s = socket.create_connection((sim.host, sim.port), timeout=timeout)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(sock, n, timeout=3.0):
    """n bytes, or AssertionError if the peer closes or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < n:
        left = deadline - time.monotonic()
        assert left > 0, "timed out after %r of %d bytes" % (data, n)
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(data))
        except socket.timeout:
            raise AssertionError("timed out after %r of %d bytes" % (data, n))
        assert chunk, "connection closed after %r of %d bytes" % (data, n)
        data += chunk
    return data


def read_adu(sock, timeout=3.0):
    """(transaction id, unit id, pdu) of the next response."""
    head = recv_exact(sock, 7, timeout)
    tid, proto, length, unit = struct.unpack(">HHHB", head)
    assert proto == 0, "protocol id %d in response" % proto
    assert 2 <= length <= 254, "length field %d in response" % length
    return tid, unit, recv_exact(sock, length - 1, timeout)


def request(sock, pdu, tid=1, unit=1, timeout=3.0):
    """Send one request, return the response PDU (checking tid and unit are echoed)."""
    sock.sendall(mbap(tid, unit, pdu))
    rtid, runit, rpdu = read_adu(sock, timeout)
    assert (rtid, runit) == (tid, unit), "tid/unit %r echoed as %r" % ((tid, unit), (rtid, runit))
    return rpdu


def fc03(first, count):
    return struct.pack(">BHH", 3, first, count)


def silent_for(sock, seconds):
    """True when no byte arrives (and the peer does not close) within `seconds`."""
    sock.settimeout(seconds)
    try:
        data = sock.recv(1)
    except socket.timeout:
        return True
    except ConnectionResetError:
        return False
    return False  # a byte arrived, or the peer closed


def closed_within(sock, seconds):
    """True when the peer closes the connection (EOF or reset) within `seconds` without
    sending anything first; AssertionError if it sends bytes."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return False
        except (ConnectionResetError, ConnectionAbortedError):
            return True
        if data == b"":
            return True
        raise AssertionError("expected a close without reply, got %r" % data)


# --- pymodbus ------------------------------------------------------------------------------

try:
    import pymodbus
    from pymodbus.client import ModbusTcpClient
except ImportError:  # the tests that need it skip/fail through need()
    pymodbus = None
    ModbusTcpClient = None

if ModbusTcpClient is not None:
    _params = inspect.signature(ModbusTcpClient.read_holding_registers).parameters
    # pymodbus 3.10+ says device_id=, 3.0-3.9 slave=, 2.x unit=.
    UNIT_KW = next(k for k in ("device_id", "slave", "unit") if k in _params)
else:
    UNIT_KW = "device_id"


def unit(n=1):
    """Keyword arguments that address unit n in the installed pymodbus version."""
    return {UNIT_KW: n}


@contextmanager
def pymodbus_client(sim, timeout=3.0):
    c = ModbusTcpClient(sim.host, port=sim.port, timeout=timeout, retries=0)
    assert c.connect(), "pymodbus could not connect to %s:%d" % (sim.host, sim.port)
    try:
        yield c
    finally:
        c.close()


def ok(rr):
    assert not rr.isError(), "unexpected error response: %s" % rr
    return rr


def exception_code(rr):
    assert rr.isError(), "expected an exception response, got %s" % rr
    return rr.exception_code


# --- host CLI ------------------------------------------------------------------------------

def cli(*args, timeout=20):
    """Run `python -m mbnode_host.cli ARGS`; CompletedProcess with text output."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))
    return subprocess.run([sys.executable, "-m", "mbnode_host.cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def wait_for(what, fn, timeout=10.0):
    """fn()'s first true value, asked every 20 ms; fails naming `what` after `timeout` s (a
    condition waited on, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "no %s within %g s" % (what, timeout)
        time.sleep(0.02)
