"""Start-up only: the socket options the Modbus TCP slave (mbnode.tcp) sets on every connection
it accepts, worked out once when the slave is made; unloaded with the rest of the start-up code
(START_ONLY True), so the options' names take no RAM once the device serves.

TCP_NODELAY (an answer leaves at once, not after the client's delayed ACK), keepalive (a vanished
peer is closed after about 25 s without traffic: idle 10 s, then 3 probes 5 s apart), and on the
unix port a send buffer of a board's size.
"""

import socket
import sys

START_ONLY = True  # unloaded once the parts are built (mbnode.startup.forget)


def options(unix):
    """The options the port has, as one flat tuple of (level, option, value) triples; unix: the
    unix port (the simulator), whose socket module lacks TCP's constants. Only constants the
    socket module exposes are used, plus the Linux numbers on the unix port: the boards' lwIP
    modules take an option number whatever its level and print a warning for one they lack."""
    linux = sys.platform == "linux"
    tcp = getattr(socket, "IPPROTO_TCP", 6 if unix else None)
    out = ()
    nodelay = getattr(socket, "TCP_NODELAY", 1 if unix else None)
    if tcp is not None and nodelay is not None:
        out += (tcp, nodelay, 1)
    keepalive = getattr(socket, "SO_KEEPALIVE", None)
    if keepalive is not None:
        out += (socket.SOL_SOCKET, keepalive, 1)
        for name, number, value in (("TCP_KEEPIDLE", 4, 10), ("TCP_KEEPINTVL", 5, 5), ("TCP_KEEPCNT", 6, 3)):
            number = getattr(socket, name, number if linux else None)
            if tcp is not None and number is not None:
                out += (tcp, number, value)
    if linux:
        # The kernel would buffer megabytes of answers for a client that does not read (send
        # buffer autotuning); a board's lwIP holds a few KB. Keep the board's order of magnitude
        # (Linux doubles the figure: 8 KB) so the simulator meets a slow reader as a board does.
        out += (1, 7, 4096)  # SOL_SOCKET, SO_SNDBUF
    return out
