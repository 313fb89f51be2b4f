"""Write protection: the Engine's `guard` (mbnode.pdu), loaded only with a "protect" section.

Two kinds of ranges per writable table (coils, holding registers: the map's, the memory
positions' 0x1000-0x17FF, and the register blocks outside the map):
- read_only: nobody writes them through Modbus or MQTT (the device's own parts still do);
- trusted_only: only a trusted source writes them: a Modbus TCP client whose address is in
  trusted_clients (the TCP slave asks `trusts` once per connection, and the connection's
  requests then come as SOURCE_TCP_TRUSTED), the slave's serial line when rtu_trusted, MQTT
  (/set writes and the MQTT gateway's local requests) when mqtt_trusted.
A write that touches any protected channel it may not write is refused whole, before anything
is written: the Engine answers exception 02 (docs/register-map.md says why 02).

`refuses` runs for every write request from a transport; it allocates nothing: the ranges are
merged and sorted at start-up into two flat lists per table, [first0, last0, first1, last1, ...]:
what a trusted source may not write (read_only) and what an untrusted one may not (read_only
and trusted_only together), so one scan with an early end answers.
"""

from mbnode.datamodel import _merge


class Guard:
    def __init__(self, cfg):
        """cfg: the checked "protect" section (mbnode.protectconfig)."""
        ro = cfg["read_only"]
        tr = cfg["trusted_only"]
        coils = ro["coils"]
        regs = ro["holding_registers"]
        # Per table (COILS 0, -, HOLDING 2, -) the merged ranges a trusted source may not write,
        # and those an untrusted one may not.
        self.fixed = (_merge(coils), None, _merge(regs), None)
        self.locked = (_merge(coils + tr["coils"]), None, _merge(regs + tr["holding_registers"]), None)
        self.ranges = (len(self.locked[0]) + len(self.locked[2])) // 2  # for the ready line
        self.clients = cfg["trusted_clients"]
        # The sources (mbnode.pdu's SOURCE_*) that may write trusted_only, as bits 1 << source:
        # local (0) and trusted TCP (4) always, RTU (1) and MQTT (3) when configured.
        self.trusted = 0x11 | cfg["rtu_trusted"] << 1 | cfg["mqtt_trusted"] << 3

    def trusts(self, ip):
        """Is the TCP client at `ip` (text) a trusted source? Asked once per connection."""
        return ip in self.clients

    def refuses(self, table, first, count, source):
        """Does a write of table[first:first + count] (COILS or HOLDING) from `source` touch a
        channel that source may not write? Allocates nothing."""
        r = self.fixed[table] if (self.trusted >> source) & 1 else self.locked[table]
        last = first + count - 1
        i = 0
        n = len(r)
        while i < n:
            if r[i] > last:  # sorted: every later range starts later still
                return False
            if r[i + 1] >= first:
                return True
            i += 2
        return False
