"""A minimal blocking Modbus TCP client for the host tools (mbnode mem)."""

import socket
import struct

from mbnode.datamodel import mem_register, u32_to_words, words_to_u32


class ModbusError(RuntimeError):
    pass


class TcpClient:
    def __init__(self, host, port, unit=1, timeout=3.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.unit = unit
        self.tid = 0

    def close(self):
        self.sock.close()

    def request(self, pdu):
        self.tid = (self.tid + 1) & 0xFFFF
        self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, self.unit) + pdu)
        head = self._recv(7)
        tid, _, length, _ = struct.unpack(">HHHB", head)
        body = self._recv(length - 1)
        if tid != self.tid:
            raise ModbusError("transaction id %d, expected %d" % (tid, self.tid))
        if body[0] & 0x80:
            raise ModbusError("exception %02X for function %02X" % (body[1], body[0] & 0x7F))
        return body

    def _recv(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ModbusError("connection closed by the slave")
            data += chunk
        return data

    def read_holding(self, first, count):
        body = self.request(struct.pack(">BHH", 3, first, count))
        return list(struct.unpack(">%dH" % count, body[2:]))

    def write_registers(self, first, values):
        self.request(struct.pack(">BHHB%dH" % len(values), 16, first, len(values), 2 * len(values), *values))

    def get_position(self, position, signed=False):
        low, high = self.read_holding(mem_register(position), 2)
        return words_to_u32(low, high, signed)

    def set_position(self, position, value):
        self.write_registers(mem_register(position), list(u32_to_words(value)))
