"""FC43 / MEI 14: Read Device Identification (Modbus Application Protocol V1.1b3, 6.21), and
FC17 Report Server ID (6.13), which says who the device is in one short answer.

Objects 0x00-0x02 (basic) are mandatory, 0x03-0x06 (regular) optional; there are no extended
objects. Stream access (read codes 1-3) returns the objects of the category from the requested
id on, split over several responses ("more follows" + next object id) when they do not fit in
one PDU; an unknown starting id restarts at object 0, as the spec says. Individual access (read
code 4) returns one object, exception 02 when it does not exist.
"""

from mbnode import fast

# Object id -> configuration key under "identity".
OBJECT_KEYS = (
    "vendor_name",
    "product_code",
    "revision",
    "vendor_url",
    "product_name",
    "model_name",
    "user_application_name",
)
_CATEGORY_LAST = (0, 0x02, 0x06, 0xFF)  # last object id per read code 1..3
_MAX_PDU = 253


class DeviceIdentification:
    def __init__(self, identity, server_id):
        """identity: dict of OBJECT_KEYS -> str (empty = object absent; basic ones never are)
        and "device_name"; server_id: the id byte FC17 reports (the unit id)."""
        name = (identity.get("device_name") or "").encode()
        # FC17 answer, built once: byte count, server id, run indicator (0xFF = running), name.
        self.server_id_pdu = bytes([17, 2 + len(name), server_id, 0xFF]) + name
        self.objects = []
        for oid, key in enumerate(OBJECT_KEYS):
            value = identity.get(key) or ""
            if value or oid < 3:
                self.objects.append((oid, value.encode()))
        regular = len(self.objects) > 3
        # Conformity: regular (0x02) or basic (0x01) identification, with individual access (0x80).
        self.conformity = 0x82 if regular else 0x81

    def _index(self, oid):
        # A counting loop: enumerate() and tuple unpacking would allocate per request.
        objects = self.objects
        i = 0
        while i < len(objects):
            if objects[i][0] == oid:
                return i
            i += 1
        return -1

    def report_server_id(self, req, ro, n, resp, wo):
        if n != 1:
            return -3
        pdu = self.server_id_pdu
        fast.copy(resp, wo, pdu, 0, len(pdu))
        return len(pdu)

    def handle(self, req, ro, n, resp, wo):
        if n < 2 or req[ro + 1] != 0x0E:
            return -1  # other MEI types (e.g. 0x0D CANopen) are not supported
        if n != 4:
            return -3
        code = req[ro + 2]
        oid = req[ro + 3]
        if code < 1 or code > 4:
            return -3
        i = self._index(oid)
        if code == 4:
            if i < 0:
                return -2
            last = i + 1
        else:
            limit = _CATEGORY_LAST[code]
            if i < 0 or oid > limit:
                i = 0
            last = i
            while last < len(self.objects) and self.objects[last][0] <= limit:
                last += 1
        resp[wo] = 43
        resp[wo + 1] = 0x0E
        resp[wo + 2] = code
        resp[wo + 3] = self.conformity
        p = wo + 7
        count = 0
        more = 0
        next_id = 0
        while i < last:
            obj_id, value = self.objects[i]
            size = len(value)
            if p + 2 + size - wo > _MAX_PDU:
                more = 0xFF
                next_id = obj_id
                break
            resp[p] = obj_id
            resp[p + 1] = size
            fast.copy(resp, p + 2, value, 0, size)
            p += 2 + size
            count += 1
            i += 1
        resp[wo + 4] = more
        resp[wo + 5] = next_id
        resp[wo + 6] = count
        return p - wo
