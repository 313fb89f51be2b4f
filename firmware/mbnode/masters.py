"""The masters a device has, for the parts that send requests to other devices (the MQTT
gateway, the TCP-to-RTU gateway, extension modules, the poller): the RTU master of each serial
line in master role, and one TCP master, made when first asked for. startup.build fills it; its
users only ask it, so none of them opens a port or knows who else shares it. A device with no
line in master mode, no extension module and no poller has none until its MQTT gateway's first
remote request (mbnode.mqtt.relay.Relay._masters)."""


class Masters:
    def __init__(self, loop):
        self.loop = loop
        self.lines = {}  # serial line name (rtu.name, e.g. "rs485") -> mbnode.rtumaster.RtuMaster
        self._first = None
        self._tcp = None
        self.tcp_links = 4  # the TCP master's pool: servers served at the same time
        self.tcp_queue = 8  # requests queued per server, and waiting for a free connection

    def add(self, name, master):
        self.lines[name] = master
        if self._first is None:
            self._first = master

    def first(self):
        """The first line in master mode (rtu before rtu2), or None."""
        return self._first

    def rtu(self, device):
        """The RTU master of the serial line named `device`, or None (no such line in master
        role, or it has closed)."""
        m = self.lines.get(device)
        return None if m is None or m.closed else m

    def tcp(self):
        """The TCP master (mbnode.tcpmaster), made on first use and kept: at start-up by the
        parts that have TCP servers in their configuration (the poller, extension modules), at
        the first remote format-0 or format-2 request by the MQTT gateway. A MemoryError here
        (a heap too fragmented for its code or its 1.6 KB of objects) leaves nothing half made:
        the request that asked is answered "out of memory" and the next one tries again."""
        if self._tcp is None:
            from mbnode.tcpmaster import TcpMaster

            self._tcp = TcpMaster(self.loop, self.tcp_links, self.tcp_queue, self.tcp_queue)
        return self._tcp
