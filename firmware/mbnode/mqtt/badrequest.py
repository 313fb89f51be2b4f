"""Why mbnode.mqtt.textproto.parse refuses a request: reason(*_Bad.args), the text after
"<COOKIE> ERROR: ". Loaded by parse for one refusal and dropped again (textproto._reason), so a
device keeps none of these texts; a MemoryError while loading it is answered "out of memory for
this request" (the bridge).
"""

from mbnode.mqtt.textproto import _MAX_COOKIE

_SHOW = 24  # a field is quoted in an error up to this many characters
# The fields by textproto's _F_* numbers: their names, and what the fixed ones allow.
_NAMES = ("request type", "cookie", "connection index", "action", "IP type", "IP", "port", "timeout",
          "serial device id", "server id", "function", "first register", "value", "count", "values")
_FIXED = {0: "0 (Modbus TCP), 1 (serial), 2 (connection)", 3: "0 (open), 1 (close), 2 (status)",
          4: "0 (IPv4), 1 (IPv6), 2 (hostname)", 10: "1, 2, 3, 4, 5, 6, 15, 16"}
_IP = ("an IPv4 address such as 192.168.1.1",  # by IP type
       "an IPv6 address in full form such as 2001:0db8:0000:0000:0000:8a2e:0370:7334",
       "a hostname of letters, digits, hyphens and dots")


def _show(tok):
    # A request field as printable text for an error reason, cut to a bounded length.
    s = "".join([chr(b) if 32 < b < 127 else "?" for b in tok[:_SHOW]])
    return s + "..." if len(tok) > _SHOW else s


def _allowed(field, lo, hi, extra):
    if field in _FIXED:
        return _FIXED[field]
    if field == 1:
        return "0.." + _MAX_COOKIE.decode()
    if field == 5:
        return _IP[extra]
    if field == 8:  # extra: the configured serial device ids (None: not checked)
        if extra is None:
            return "a serial device id"
        return "one of " + ", ".join(extra) if extra else "none (no serial device is configured)"
    if field == 14:
        return "%d comma-separated values 0..%d without spaces" % (lo, hi)
    if field == 13 and extra is not None:  # a count limited by the first register (extra)
        return "%d..%d from first register %d" % (lo, hi, extra)
    return "%d..%d" % (lo, hi)


def reason(why, field, tok, lo=0, hi=0, extra=None):
    """The reason for a request textproto.parse refuses, from its _Bad's args: why (textproto's
    _MISSING, _WRONG, _EXTRA, _EMPTY_ITEM, _WRONG_ITEM, _ITEMS), the field, its token, and what
    the field allows (lo, hi, extra; for the items: see textproto._items)."""
    if why == 0:
        return "missing %s: allowed %s" % (_NAMES[field], _allowed(field, lo, hi, extra))
    if why == 1:
        return "%s %s: allowed %s" % (_NAMES[field], _show(tok), _allowed(field, lo, hi, extra))
    if why == 2:  # tok: the first extra token, maybe the unsplit rest of the payload: its first word
        return "extra field %s: nothing allowed after %s" % (_show(tok.split(None, 1)[0]), _NAMES[field])
    if why == 3:  # lo: the count, hi: the top value, extra: the item's number
        return "values %s: item %d is empty: allowed %s" % (_show(tok), extra, _allowed(14, lo, hi, None))
    if why == 4:  # lo: the item's number, hi: the top value, extra: the item
        return "values %s: item %d is %s: allowed 0..%d" % (_show(tok), lo, _show(extra), hi)
    # lo: the count, hi: the top value, extra: the items found
    return "values %s: %d items for count %d: allowed %s" % (_show(tok), extra, lo, _allowed(14, lo, hi, None))
