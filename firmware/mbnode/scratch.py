"""The device's one scratch buffer: 260 bytes (the largest Modbus TCP frame), shared by every
part that needs bytes only for the length of one call.

Its users: the TCP slave (the rest of a frame, copied into the connection's slot at once; the
answer, written by the Engine and sent, its unsent rest copied into the slot), the RTU link
(bytes behind a frame already begun, copied into its receive buffer), the TCP master (an
answer's bytes, copied into the transaction), the MQTT bridge (the bytes of a message it
refuses, dropped; it has the buffer from the relay, mbnode.mqtt.relay.Relay.scratch) and the
MQTT relay (a local request's PDU, built from its text and handed to the Engine, and behind it
the Engine's answer, read into the reply line at once) and the MQTT telemetry (each point
batch's answer, compared, kept and decoded before the next read; a /set write's request PDU
and behind it the Engine's answer, read into the /res payload in the same call).

The rule that makes one buffer enough: nothing is kept in it across a call. Whoever puts bytes
in it uses them before it returns, and nothing it calls meanwhile puts bytes in it: the loop
runs one handler at a time, no interrupt handler touches it, and the Engine reads no socket or
port. The one way the Engine reaches another part while it serves a request is a write to
extension modules' outputs (mbnode.extension): the module's job copies the values first, and
the request is then answered later (pdu.PENDING), so nobody reads the buffer after that call.
"""

SCRATCH = bytearray(260)
