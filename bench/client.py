"""Raw-socket Modbus TCP clients: a lean closed loop for throughput, a framed one for mixed loads.

The lean loop sends one pre-built ADU, receives exactly the expected number of bytes into a
preallocated buffer and checks the response's function code; nothing else, so the client costs
as little CPU per request as CPython allows. Every loop is bounded by a count and a deadline.
"""

import selectors
import socket
import time

from common import HOST


class Failed(Exception):
    pass


def connect(port, timeout=2.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _recv_exact(sock, view, n):
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise Failed("connection closed after %d of %d bytes" % (got, n))
        got += k


def lean_loop(sock, req, seconds, max_count, check_every=32):
    """Closed loop of one request for `seconds` (at most max_count requests).

    Returns (requests, elapsed seconds). Raises Failed on a short, closed or wrong response."""
    adu = req.adu
    n = req.resp_len
    fc = req.fc
    buf = bytearray(max(n, 260))
    view = memoryview(buf)
    send = sock.sendall
    recv_into = sock.recv_into
    clock = time.perf_counter
    t0 = clock()
    deadline = t0 + seconds
    count = 0
    try:
        while count < max_count:
            send(adu)
            got = recv_into(view, n)
            while got < n:
                if got >= 9 and buf[7] & 0x80:
                    break  # a short exception response: reported below
                k = recv_into(view[got:], n - got)
                if not k:
                    raise Failed("connection closed")
                got += k
            if buf[7] != fc:
                raise Failed("exception response %02X %02X" % (buf[7], buf[8]) if buf[7] & 0x80
                             else "function code %d in response" % buf[7])
            count += 1
            if count % check_every == 0 and clock() >= deadline:
                break
    except socket.timeout:
        raise Failed("no response within the socket timeout")
    except OSError as e:
        raise Failed("%s: %s" % (type(e).__name__, e))
    return count, clock() - t0


def read_adu(sock):
    """One response ADU (header + PDU) read by its MBAP length."""
    head = bytearray(7)
    _recv_exact(sock, memoryview(head), 7)
    length = (head[4] << 8) | head[5]
    if length < 2 or length > 254:
        raise Failed("bad MBAP length %d" % length)
    body = bytearray(length - 1)
    _recv_exact(sock, memoryview(body), length - 1)
    return bytes(head) + bytes(body)


def mixed_load(port, requests, conns=4, per_conn=75, timeout=10.0):
    """`conns` concurrent connections, each sending per_conn requests cycling through `requests`
    (each connection starting at a different one), one outstanding request per connection.

    Returns (ok count, error text or None). A response must echo the transaction id and carry
    the request's function code (no exception)."""
    sel = selectors.DefaultSelector()
    socks = []
    deadline = time.monotonic() + timeout
    ok = 0
    try:
        for i in range(conns):
            s = connect(port)
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, {"i": i, "sent": 0, "buf": bytearray(), "want": None})
        for key in list(sel.get_map().values()):
            _send_next(key.fileobj, key.data, requests)
        pending = conns
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                s, st = key.fileobj, key.data
                chunk = s.recv(4096)
                if not chunk:
                    return ok, "connection %d closed by the server" % st["i"]
                st["buf"] += chunk
                while len(st["buf"]) >= 7:
                    total = 6 + ((st["buf"][4] << 8) | st["buf"][5])
                    if len(st["buf"]) < total:
                        break
                    adu, st["buf"] = bytes(st["buf"][:total]), st["buf"][total:]
                    tid, fc = st["want"]
                    if (adu[0] << 8 | adu[1]) != tid or adu[7] != fc:
                        return ok, "conn %d: bad response %s to FC%02d" % (st["i"], adu[:12].hex(), fc)
                    ok += 1
                    if st["sent"] < per_conn:
                        _send_next(s, st, requests)
                    else:
                        pending -= 1
        if pending:
            return ok, "timeout: %d of %d answered" % (ok, conns * per_conn)
        return ok, None
    except (OSError, Failed) as e:
        return ok, "%s: %s" % (type(e).__name__, e)
    finally:
        for s in socks:
            s.close()
        sel.close()


def _send_next(sock, st, requests):
    req = requests[(st["i"] * 5 + st["sent"]) % len(requests)]
    tid = (st["i"] << 12) | (st["sent"] & 0xFFF)
    adu = bytes([tid >> 8, tid & 0xFF]) + req.adu[2:]
    st["want"] = (tid, req.fc)
    st["sent"] += 1
    sock.setblocking(True)
    sock.sendall(adu)
    sock.setblocking(False)
