"""The MQTT Modbus gateway's text protocol (the router format of seeds/000), without I/O.

parse() turns one request payload into a Request, build_pdu() writes its Modbus request PDU
(function code first, the same bytes for the local Engine, a Modbus TCP server or an RTU field
device) and format_response() turns the response PDU into the reply line. The reply texts
are made here but for refusals: why parse() refuses a request (mbnode.mqtt.badrequest, loaded
for each and dropped) and the replies to requests that failed later (a malformed response, a
timeout, a failed connection, a server not there: mbnode.mqtt.refusals, loaded at the first).

Requests (fields separated by any run of whitespace; leading/trailing whitespace ignored):
  0 COOKIE IP_TYPE IP PORT TIMEOUT SERVER_ID FUNCTION FIRST_REGISTER COUNT|VALUE|COUNT VALUES
  1 COOKIE SERIAL_DEVICE_ID TIMEOUT SERVER_ID FUNCTION FIRST_REGISTER COUNT|VALUE|COUNT VALUES
  2 COOKIE CONNECTION_INDEX 0|1|2
  2 COOKIE CONNECTION_INDEX 0 IP_TYPE IP PORT TIMEOUT
("2 COOKIE N 0" alone reopens slot N with the parameters of its last open.)
Replies: "<COOKIE> OK", "<COOKIE> OK v1 v2 ...", "<COOKIE> ERROR: <reason>"; a request whose
cookie itself is missing or invalid is answered "ERROR: <reason>" (no valid cookie can be
"ERROR:", so such a reply is never taken for the answer to another request).

The cookie stays the decimal text it arrived as: 2**64-1 is far beyond MicroPython's small ints
(30 bits on a microcontroller), and the reply only ever echoes it.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Request.kind: the request's format number.
TCP = const(0)
SERIAL = const(1)
CONN = const(2)
# Request.action for CONN requests.
OPEN = const(0)
CLOSE = const(1)
STATUS = const(2)

_MAX_COOKIE = b"18446744073709551615"  # 2**64 - 1
# The most fields a request has (format 0 with FC15/16): parse() splits off at most this many,
# so a payload of thousands of short words never becomes thousands of objects.
_FIELDS = const(11)
# cookie_of() looks at this many bytes: a request type and a 20-digit cookie with room for
# whitespace. The bridge keeps as many of a request too long to take in (mbnode.mqtt.bridge).
HEAD = const(64)
_COMMA = const(44)
# A request's fields, as _Bad names them (mbnode.mqtt.badrequest has their names and what each allows).
_F_TYPE = const(0)
_F_COOKIE = const(1)
_F_INDEX = const(2)
_F_ACTION = const(3)
_F_IP_TYPE = const(4)
_F_IP = const(5)
_F_PORT = const(6)
_F_TIMEOUT = const(7)
_F_DEVICE = const(8)
_F_UNIT = const(9)
_F_FUNCTION = const(10)
_F_FIRST = const(11)
_F_VALUE = const(12)
_F_COUNT = const(13)
_F_VALUES = const(14)
# What is wrong with it (_Bad's first argument).
_MISSING = const(0)
_WRONG = const(1)
_EXTRA = const(2)
_EMPTY_ITEM = const(3)
_WRONG_ITEM = const(4)
_ITEMS = const(5)


class RequestError(ValueError):
    """A request that cannot be executed; args[0] is the complete reply line to publish."""


class _Bad(Exception):
    # Internal: args are (what is wrong, field, token, lo, hi, extra), turned into the reason
    # by mbnode.mqtt.badrequest.reason (_reason); parse() adds the cookie.
    pass


class Request:
    """One parsed request. Fields that a format does not have stay None.

    kind      TCP, SERIAL or CONN
    cookie    the cookie as its decimal text, echoed in the reply
    ip_type   0 IPv4, 1 IPv6 (full form), 2 hostname; host: the text (IPv4 normalised to plain
              decimal); port 1..65535; timeout 1..999 seconds (TCP, and CONN with action OPEN;
              all None for an OPEN without them, which reopens the slot's last target)
    device    the serial device id (SERIAL)
    unit      server id 1..255
    fc        function code; address: first register NUMBER - 1 (0-based); count: registers or
              bits (1 for FC05/06, 0 allowed for FC03/04, see build_pdu)
    value     FC05: 0 or 1; FC06: 0..65535
    values    FC15/16: the checked comma-separated values as bytes; build_pdu walks them in place,
              so 1968 coil values never become 1968 objects
    index     connection slot 0..7 and action OPEN/CLOSE/STATUS (CONN)
    """

    def __init__(self, kind, cookie):
        self.kind = kind
        self.cookie = cookie
        self.ip_type = self.host = self.port = self.timeout = None
        self.device = self.unit = self.fc = self.address = self.count = None
        self.value = self.values = self.index = self.action = None


def _printable(tok):
    for b in tok:
        if not 32 < b < 127:
            return False
    return True


def _cookie(tok):
    # The cookie's text when tok is a decimal 0..2**64-1, else None; compared as digits.
    if tok.isdigit():
        digits = tok.lstrip(b"0")
        if len(digits) < 20 or (len(digits) == 20 and digits <= _MAX_COOKIE):
            return tok.decode()
    return None


def _small(tok):
    # A decimal field as int, or -1; at most 6 significant digits, so never a big int.
    if tok.isdigit() and len(tok.lstrip(b"0")) <= 6:
        return int(tok)
    return -1


# A request's fields are taken left to right from its tokens, which parse() reverses: the next
# field is the last item (t.pop()). The first bad or missing field is the error; lo, hi, extra:
# what the field allows, for the error (badrequest._allowed).


def _take(t, field, lo=0, hi=0, extra=None):
    if not t:
        raise _Bad(_MISSING, field, None, lo, hi, extra)
    return t.pop()


def _num(t, field, lo, hi, extra=None, choices=None):
    tok = _take(t, field, lo, hi, extra)
    v = _small(tok)
    if not lo <= v <= hi or (choices and v not in choices):
        raise _Bad(_WRONG, field, tok, lo, hi, extra)
    return v


def _end(t, last):
    if t:
        # The last token can be the unsplit rest of the payload (_FIELDS): its first word is quoted.
        raise _Bad(_EXTRA, last, t[-1])


def _ipv4(tok):
    parts = tok.split(b".")
    if len(parts) != 4:
        return None
    nums = [_small(p) if len(p) <= 3 else -1 for p in parts]
    for n in nums:
        if not 0 <= n <= 255:
            return None
    return "%d.%d.%d.%d" % tuple(nums)  # "010" is ten, as a decimal, never octal


def _ipv6(tok):
    groups = tok.split(b":")
    if len(groups) != 8:
        return False
    for g in groups:
        if len(g) != 4:
            return False
        for c in g:
            if c not in b"0123456789abcdefABCDEF":
                return False
    return True


def _hostname(tok):
    if not 0 < len(tok) <= 253:
        return False
    for label in tok.split(b"."):
        if not 0 < len(label) <= 63 or label[0] == 45 or label[-1] == 45:  # 45: "-"
            return False
        for c in label:
            if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 45):
                return False
    return True


def _target(t, r):
    # IP_TYPE IP PORT TIMEOUT (format 0, and format 2 OPEN).
    r.ip_type = _num(t, _F_IP_TYPE, 0, 2)
    tok = _take(t, _F_IP, 0, 0, r.ip_type)
    if r.ip_type == 0:
        r.host = _ipv4(tok)
        ok = r.host is not None
    elif r.ip_type == 1:
        ok = _ipv6(tok)
    else:
        ok = _hostname(tok)
    if not ok:
        raise _Bad(_WRONG, _F_IP, tok, 0, 0, r.ip_type)
    if r.host is None:
        r.host = tok.decode()
    # Port 0 is refused: no TCP server listens there, so it can only be a typing mistake.
    r.port = _num(t, _F_PORT, 1, 65535)
    r.timeout = _num(t, _F_TIMEOUT, 1, 999)


def _items(tok, count, top, buf, off):
    """Checks (buf None) or writes the comma-separated values in tok: FC15 bits LSB first from
    buf[off] (zeroed by the caller), FC16 big-endian registers. Returns the number of items."""
    n = len(tok)
    i = k = 0
    while True:
        j = i
        v = 0
        while j < n and tok[j] != _COMMA:
            d = tok[j] - 48
            v = v * 10 + d if 0 <= d <= 9 and v <= top else top + 1  # stays above top once bad
            j += 1
        if buf is not None:
            if top == 1:
                if v:
                    buf[off + (k >> 3)] |= 1 << (k & 7)
            else:
                buf[off + 2 * k] = v >> 8
                buf[off + 2 * k + 1] = v & 0xFF
        k += 1
        if buf is None:
            if j == i:
                raise _Bad(_EMPTY_ITEM, _F_VALUES, tok, count, top, k)
            if v > top:
                raise _Bad(_WRONG_ITEM, _F_VALUES, tok, k, top, tok[i:j])
        if j >= n:
            return k
        i = j + 1


def parse(payload, serial_ids=None):
    """Request from one payload (bytes or str); RequestError carrying the reply line otherwise.

    serial_ids: the configured serial device ids (format 1 refuses others); None = not checked.
    """
    if type(payload) is str:
        payload = payload.encode()
    tokens = payload.split(None, _FIELDS)
    cookie = _cookie(tokens[1]) if len(tokens) > 1 else None
    tokens.reverse()  # the fields are taken from the end (_take)
    try:
        return _parse(tokens, cookie, serial_ids)
    except _Bad as e:
        raise RequestError(error(cookie, _reason(e.args)))


def _reason(args):
    # The reason for a refused request (mbnode.mqtt.badrequest, loaded for it and dropped again:
    # none of its texts stay on the heap). Its MemoryError is answered "out of memory" (the bridge).
    import sys

    import mbnode.mqtt

    try:
        from mbnode.mqtt.badrequest import reason

        return reason(*args)
    finally:
        sys.modules.pop("mbnode.mqtt.badrequest", None)
        if hasattr(mbnode.mqtt, "badrequest"):
            delattr(mbnode.mqtt, "badrequest")


def _parse(t, cookie, serial_ids):
    kind = _num(t, _F_TYPE, 0, 2)
    tok = _take(t, _F_COOKIE)
    if cookie is None:
        raise _Bad(_WRONG, _F_COOKIE, tok)
    r = Request(kind, cookie)
    if kind == CONN:
        r.index = _num(t, _F_INDEX, 0, 7)
        r.action = _num(t, _F_ACTION, 0, 2)
        if r.action == OPEN and t:  # without a target: reopen (mbnode.mqtt.relay)
            _target(t, r)
        _end(t, _F_TIMEOUT if r.host is not None else _F_ACTION)
        return r
    if kind == TCP:
        _target(t, r)
    else:
        tok = _take(t, _F_DEVICE, 0, 0, serial_ids)
        r.device = tok.decode() if _printable(tok) else None
        if r.device is None or (serial_ids is not None and r.device not in serial_ids):
            raise _Bad(_WRONG, _F_DEVICE, tok, 0, 0, serial_ids)
        r.timeout = _num(t, _F_TIMEOUT, 1, 999)
    r.unit = _num(t, _F_UNIT, 1, 255)
    fc = r.fc = _num(t, _F_FUNCTION, 1, 16, None, (1, 2, 3, 4, 5, 6, 15, 16))
    first = _num(t, _F_FIRST, 1, 65536)
    r.address = first - 1
    if fc == 5 or fc == 6:
        r.value = _num(t, _F_VALUE, 0, 1 if fc == 5 else 0xFFFF)
        r.count = 1
        _end(t, _F_VALUE)
        return r
    # The seed's counts: reads of 1..2000 bits or 0..125 registers, writes of 1..1968 bits or
    # 1..123 registers.
    lo = 0 if fc == 3 or fc == 4 else 1
    hi = 2000 if fc <= 2 else 125 if fc <= 4 else 1968 if fc == 15 else 123
    room = 65537 - first  # the seed's rule: first register + count <= 65537
    if room < hi:
        r.count = _num(t, _F_COUNT, lo, room, first)
    else:
        r.count = _num(t, _F_COUNT, lo, hi)
    if fc >= 15:
        top = 1 if fc == 15 else 0xFFFF
        r.values = _take(t, _F_VALUES, r.count, top)
        k = _items(r.values, r.count, top, None, 0)
        if k != r.count:
            raise _Bad(_ITEMS, _F_VALUES, r.values, r.count, top, k)
        _end(t, _F_VALUES)
    else:
        _end(t, _F_COUNT)
    return r


def build_pdu(req, buf, off=0):
    """Write the request PDU of a parsed TCP/SERIAL request to buf[off:]; returns its length
    (at most 252 bytes). 0 for a read of 0 registers (the seed allows count 0 for FC03/04): no
    Modbus request can ask for 0 registers, so there is no transaction and the answer is
    format_response(req, None, 0) = "<COOKIE> OK"."""
    fc = req.fc
    if req.count == 0:
        return 0
    buf[off] = fc
    buf[off + 1] = req.address >> 8
    buf[off + 2] = req.address & 0xFF
    if fc == 5 or fc == 6:
        v = (0xFF00 if req.value else 0) if fc == 5 else req.value
        buf[off + 3] = v >> 8
        buf[off + 4] = v & 0xFF
        return 5
    buf[off + 3] = req.count >> 8
    buf[off + 4] = req.count & 0xFF
    if fc <= 4:
        return 5
    size = (req.count + 7) >> 3 if fc == 15 else 2 * req.count
    buf[off + 5] = size
    for i in range(off + 6, off + 6 + size):
        buf[i] = 0
    _items(req.values, req.count, 1 if fc == 15 else 0xFFFF, buf, off + 6)
    return 6 + size


def error(req, reason):
    """ "<COOKIE> ERROR: reason"; req is a Request, a cookie text, or None (no cookie)."""
    if req is None:
        return "ERROR: " + reason
    return (req if type(req) is str else req.cookie) + " ERROR: " + reason


def ok(req):
    """ "<COOKIE> OK": writes, CONN open and close."""
    return req.cookie + " OK"


def status(req, is_open):
    """Reply to CONN STATUS: "<COOKIE> OK 1" for an open connection, "<COOKIE> OK 0" else."""
    return req.cookie + (" OK 1" if is_open else " OK 0")


def exception_text(code):
    # The names of exception codes 1..11, comma-separated (empty: a code without a name): one str
    # object on the heap instead of nine.
    names = ("illegal function,illegal data address,illegal data value,server device failure,acknowledge,"
             "server device busy,,memory parity error,,gateway path unavailable,"
             "gateway target device failed to respond").split(",")
    name = names[code - 1] if 1 <= code <= len(names) else None
    return "Modbus exception %d (%s)" % (code, name) if name else "Modbus exception %d" % code


def _refusals():
    # mbnode.mqtt.refusals, loaded at the first reply that needs it and kept.
    from mbnode.mqtt import refusals

    return refusals


def format_response(req, pdu, n, off=0):
    """The reply line for the response PDU pdu[off:off+n] to req (a TCP/SERIAL request)."""
    fc = req.fc
    if req.count == 0:
        return ok(req)
    if n < 2:
        return _refusals().malformed(req, 0, n)
    got = pdu[off]
    if got == fc | 0x80:
        return error(req, exception_text(pdu[off + 1]))
    if got != fc:
        return _refusals().malformed(req, 1, got, fc)
    if fc > 4:
        if n != 5:
            return _refusals().malformed(req, 2, n)
        if fc == 5:
            expect = 0xFF00 if req.value else 0
        else:
            expect = req.value if fc == 6 else req.count
        echo = (pdu[off + 1] << 24) | (pdu[off + 2] << 16) | (pdu[off + 3] << 8) | pdu[off + 4]
        if echo != (req.address << 16) | expect:
            return _refusals().malformed(req, 3)
        return ok(req)
    count = req.count
    size = 2 * count if fc >= 3 else (count + 7) >> 3
    if pdu[off + 1] != n - 2:
        return _refusals().malformed(req, 4, pdu[off + 1], n - 2)
    if n - 2 != size:
        return _refusals().malformed(req, 5, n - 2, count, "registers" if fc >= 3 else "coils" if fc == 1 else "inputs")
    d = off + 2
    head = req.cookie + " OK"
    if fc >= 3:
        return _registers(head, pdu, d, count)
    out = bytearray(len(head) + 2 * count)
    out[0:len(head)] = head.encode()
    k = len(head)
    for i in range(count):
        out[k] = 32
        out[k + 1] = 49 if (pdu[d + (i >> 3)] >> (i & 7)) & 1 else 48
        k += 2
    return out.decode()


def _registers(head, pdu, d, count):
    """head and the count registers at pdu[d:] in decimal, space-separated: written into one
    bytearray of the exact length (a list of 125 small strings, joined and concatenated, took
    about 6 KB at once, more than a fragmented heap of the specified size had in one piece)."""
    n = len(head)
    for i in range(count):
        v = (pdu[d + 2 * i] << 8) | pdu[d + 2 * i + 1]
        n += 2 if v < 10 else 3 if v < 100 else 4 if v < 1000 else 5 if v < 10000 else 6
    out = bytearray(n)
    out[0:len(head)] = head.encode()
    k = n
    for i in range(count - 1, -1, -1):  # from the end: digits come lowest first
        v = (pdu[d + 2 * i] << 8) | pdu[d + 2 * i + 1]
        while True:
            k -= 1
            out[k] = 48 + v % 10
            v //= 10
            if not v:
                break
        k -= 1
        out[k] = 32
    return out.decode()


def cookie_of(payload, cut=False):
    """The cookie text of a payload, or None, from its first HEAD bytes only (no copy of the
    rest). cut: payload is itself only the first bytes of a request. A cookie is taken only
    when whitespace follows it within the bytes looked at: a cut one would answer someone else."""
    if type(payload) is str:
        payload = payload.encode()
    if len(payload) > HEAD:
        payload = payload[:HEAD]
        cut = True
    tokens = payload.split(None, 2)
    if len(tokens) < 2 or (cut and len(tokens) == 2 and not payload[-1:].isspace()):
        return None
    return _cookie(tokens[1])
