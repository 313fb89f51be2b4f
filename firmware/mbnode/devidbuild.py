"""Start-up only: the device identification's answers (mbnode.devid) made from the "identity"
section once, in the form they leave in; unloaded with the rest of the start-up code
(START_ONLY True), so the section's key names take no RAM once the device serves."""

START_ONLY = True  # unloaded once the parts are built (mbnode.startup.forget)

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


def encode(identity, server_id):
    """(objects, conformity, FC17 answer) for DeviceIdentification. identity: dict of OBJECT_KEYS
    -> str (empty = object absent; basic ones never are) and "device_name" (ASCII of at most
    100 characters, mbnode.config); server_id: the id byte FC17 reports (the unit id).
    objects: the objects present as an FC43/14 answer lists them, (id, length, value) each,
    ids ascending."""
    name = (identity.get("device_name") or "").encode()
    # FC17 answer: byte count, server id, run indicator (0xFF = running), name.
    server_id_pdu = bytes([17, 2 + len(name), server_id, 0xFF]) + name
    objects = b""
    regular = False
    for oid, key in enumerate(OBJECT_KEYS):
        value = (identity.get(key) or "").encode()
        if value or oid < 3:
            objects += bytes([oid, len(value)]) + value
            if oid > 2:
                regular = True
    # Conformity: regular (0x02) or basic (0x01) identification, with individual access (0x80).
    return objects, 0x82 if regular else 0x81, server_id_pdu
