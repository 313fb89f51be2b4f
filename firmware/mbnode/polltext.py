"""The poller's MQTT texts (docs/master.md, "Poller and alarms"): a request's values as a
point's payload and an alarm's message with its %-codes. Loaded by mbnode.poller only when the
bridge attaches and something is published; everything here allocates (texts, and the values
decoded for them)."""

import time

from mbnode import datatypes


def unix_ms():
    """Milliseconds since 1970 (right once the board's clock is set)."""
    return time.time_ns() // 1000000


def value(req, buf, d, i):
    """Value i of an answer's data at buf[d:]."""
    if req.fc <= 2:
        return ((buf[d + (i >> 3)] >> (i & 7)) & 1) == 1
    if req.reg_bool:
        return buf[d + 2 * i] != 0 or buf[d + 2 * i + 1] != 0
    if req.text:
        return datatypes.decode(req, buf, d)
    return datatypes.decode(req, buf, d + (i if req.size == 1 else 2 * req.width * i))


def point(poller, req, buf, o):
    """Publish the answer at buf[o:] on the request's point when it changed since the last
    publish, or every_s is due: {"timestamp": <unix ms>, "value": v} (a list for several)."""
    seen = req.seen
    n = req.answer
    now = time.ticks_ms()
    same = req.published is not None
    if same:
        for i in range(n):
            if seen[i] != buf[o + i]:
                same = False
                break
    if same and not (req.every_ms and not 0 <= time.ticks_diff(now, req.published) < req.every_ms):
        return
    vals = [value(req, buf, o + 2, i) for i in range(req.values)]
    payload = '{"timestamp": %d, "value": %s}' % (unix_ms(), datatypes.json_value(
        req, vals[0] if len(vals) == 1 else vals))
    if poller.publish(req.topic, payload.encode(), False):
        for i in range(n):
            seen[i] = buf[o + i]
        req.published = now


def _shown(req, v):
    return v if type(v) is str else datatypes.json_value(req, v)


def message(poller, a, req, buf, d):
    """Alarm a's message, its %-codes replaced (the answer's data at buf[d:])."""
    m = a.message
    s = req.server
    out = []
    i = 0
    while True:
        j = m.find("%", i)
        if j < 0:
            out.append(m[i:])
            break
        out.append(m[i:j])
        c = m[j + 1:j + 3]
        k = 3
        if c == "mv":
            out.append(_shown(req, value(req, buf, d, a.index)))
        elif c == "mi":
            out.append(str(s.unit))
        elif c == "ma":
            out.append(s.where)
        elif c == "mn":
            out.append(s.name)
        elif c == "mr":
            out.append(str(req.number + (a.index // 2 if req.size == 1 and req.fc >= 3 else a.index * req.per)))
        elif c == "ut":
            out.append(str(unix_ms() // 1000))
        elif c == "ts":
            t = time.localtime()
            out.append("%04d-%02d-%02d %02d:%02d:%02d" % (t[0], t[1], t[2], t[3], t[4], t[5]))
        elif c == "dn":
            out.append(poller.device_name)
        elif c == "an":
            out.append(a.name)
        elif c[:1] == "n":
            out.append("\n")
            k = 2
        else:  # "%%" (the configuration allows no other code)
            out.append("%")
            k = 2
        i = j + k
    return "".join(out)
