"""The device's one scratch buffer: 260 bytes (the largest Modbus TCP frame), shared by every
part that reads bytes only to copy them elsewhere or to drop them.

Its users: the TCP slave's connections (the rest of a frame, copied into the slot), the RTU
link (bytes behind a frame already begun, copied into its receive buffer), the TCP master (an
answer's bytes, copied into the transaction), the MQTT bridge (the bytes of a message it
refuses, dropped; it has the buffer from the relay, mbnode.mqtt.relay.Relay.scratch) and the
MQTT relay (a local request's PDU, built from its text and handed to the Engine at once).

The rule that makes one buffer enough: nothing is kept in it across a call. Whoever writes it
uses what it wrote before it returns and before it calls anything that could write it too (a
read of another socket or port); the loop runs one handler at a time and no interrupt handler
touches it.
"""

SCRATCH = bytearray(260)
