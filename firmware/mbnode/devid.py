"""FC43 / MEI 14: Read Device Identification (Modbus Application Protocol V1.1b3, 6.21), and
FC17 Report Server ID (6.13), which says who the device is in one short answer.

Objects 0x00-0x02 (basic) are mandatory, 0x03-0x06 (regular) optional; there are no extended
objects. Stream access (read codes 1-3) returns the objects of the category from the requested
id on, split over several responses ("more follows" + next object id) when they do not fit in
one PDU; an unknown starting id restarts at object 0, as the spec says. Individual access (read
code 4) returns one object, exception 02 when it does not exist.
"""

from mbnode import fast

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_MAX_PDU = const(253)


class DeviceIdentification:
    def __init__(self, identity, server_id):
        """identity: dict of mbnode.devidbuild.OBJECT_KEYS -> str (empty = object absent; basic
        ones never are) and "device_name"; server_id: the id byte FC17 reports (the unit id)."""
        from mbnode.devidbuild import encode  # start-up only (unloaded once the parts are built)

        # The objects present in the answer's own form, (id, length, value) each, ids ascending.
        self.objects, self.conformity, self.server_id_pdu = encode(identity, server_id)

    def handle(self, req, ro, n, resp, wo):
        """FC43 (MEI 14) or FC17: the answer's length, or -exception code."""
        if req[ro] == 17:
            if n != 1:
                return -3
            pdu = self.server_id_pdu
            fast.copy(resp, wo, pdu, 0, len(pdu))
            return len(pdu)
        if n < 2 or req[ro + 1] != 0x0E:
            return -1  # other MEI types (e.g. 0x0D CANopen) are not supported
        if n != 4:
            return -3
        code = req[ro + 2]
        oid = req[ro + 3]
        if code < 1 or code > 4:
            return -3
        objects = self.objects
        end = len(objects)
        i = 0  # where object oid starts in objects (end: not there)
        while i < end and objects[i] != oid:
            i += 2 + objects[i + 1]
        if code == 4:
            if i == end:
                return -2
            last = oid
        else:
            last = 0x02 if code == 1 else 0x06 if code == 2 else 0xFF  # the category's last id
            if i == end or oid > last:
                i = 0
        resp[wo] = 43
        resp[wo + 1] = 0x0E
        resp[wo + 2] = code
        resp[wo + 3] = self.conformity
        p = wo + 7
        count = 0
        more = 0
        next_id = 0
        while i < end and objects[i] <= last:
            size = 2 + objects[i + 1]
            if p + size - wo > _MAX_PDU:
                more = 0xFF
                next_id = objects[i]
                break
            fast.copy(resp, p, objects, i, size)
            p += size
            i += size
            count += 1
        resp[wo + 4] = more
        resp[wo + 5] = next_id
        resp[wo + 6] = count
        return p - wo
