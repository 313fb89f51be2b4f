"""The MQTT gateway's error replies to requests that parsed (mbnode.mqtt.textproto) but could not
be answered as asked: a malformed response, a timeout, a connection that failed, a server or
serial device that is not there, a slot never opened. Loaded at the first such reply and kept
(mbnode.mqtt.jobs loads it with itself; textproto.format_response and the relay load it inside
the bridge's request handling, whose MemoryError is answered "out of memory for this request"):
a gateway whose requests all succeed keeps none of these texts on the heap. textproto.error
makes the line; why parse refuses a request: mbnode.mqtt.badrequest.
"""

from mbnode.mqtt.textproto import error

# format_response's complaints, "malformed response: " and one of these with its numbers.
_MALFORMED = ("%d bytes", "function %d to function %d", "%d bytes, expected 5", "the echo does not match the request",
              "byte count %d with %d data bytes", "%d data bytes for %d %s")


def malformed(req, which, *args):
    """ "<COOKIE> ERROR: malformed response: ..." with _MALFORMED[which] % args."""
    return error(req, "malformed response: " + _MALFORMED[which] % args)


def _where(req):
    return "[%s]:%d" % (req.host, req.port) if req.ip_type == 1 else "%s:%d" % (req.host, req.port)


def timeout(req):
    """No response in req.timeout seconds (TCP target or serial field device)."""
    return error(req, "timeout: no response within %d s" % req.timeout)


def refused(req):
    return error(req, "connection refused by %s" % _where(req))


def unreachable(req, detail):
    """Connecting failed otherwise (no route, name not resolved...); detail says how."""
    return error(req, "cannot connect to %s: %s" % (_where(req), detail))


def no_serial_device(req):
    """The serial device id is configured but its port cannot act as master now."""
    return error(req, "serial device id %s: no such serial device available" % req.device)


def no_such_server(req, unit_id):
    """A request to this device's own address for a server id it does not answer."""
    return error(req, "server id %d: no such server at %s (this device answers server id %d)"
                 % (req.unit, _where(req), unit_id))


def slave_port(req, unit_id):
    """Format 1 for another server id while the serial port serves as this device's slave port
    (or is off): nothing else can be reached through it."""
    return error(req, "serial device id %s: the serial port is a Modbus RTU slave here, only server id %d "
                 "(this device) is answered" % (req.device, unit_id))


def never_opened(req):
    """A reopen ("2 COOKIE N 0" without a target) of a slot that was never opened."""
    return error(req, "connection index %d was never opened: allowed 0 (open) with IP_TYPE IP PORT TIMEOUT"
                 % req.index)

