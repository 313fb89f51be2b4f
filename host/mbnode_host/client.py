"""A minimal blocking Modbus TCP client for the host tools (mbnode mem)."""

import struct

from mbnode.memory32 import mem_register, u32_to_words, words_to_u32


class ModbusError(RuntimeError):
    pass


# Modbus exception codes (Modbus Application Protocol V1.1b3, 7)
EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "server device failure",
              6: "server device busy", 10: "gateway path unavailable", 11: "gateway target device failed to respond"}


class TcpClient:
    """Over `sock`, a connected socket with a timeout (socket.create_connection)."""

    def __init__(self, sock, unit=1):
        self.sock = sock
        self.unit = unit
        self.tid = 0

    def close(self):
        self.sock.close()

    def request(self, pdu):
        self.tid = (self.tid + 1) & 0xFFFF
        self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, self.unit) + pdu)
        head = self._recv(7)
        tid, _, length, _ = struct.unpack(">HHHB", head)
        if not 2 <= length <= 254:
            raise ModbusError("MBAP length %d in the reply: allowed 2..254" % length)
        body = self._recv(length - 1)
        if tid != self.tid:
            raise ModbusError("transaction id %d, expected %d" % (tid, self.tid))
        if len(body) < 2 or body[0] & 0x7F != pdu[0]:
            raise ModbusError("a reply for function %02X to a request of function %02X" % (body[0] if body else 0, pdu[0]))
        if body[0] & 0x80:
            raise ModbusError("exception %02X (%s) to function %02X" % (
                body[1], EXCEPTIONS.get(body[1], "unknown"), pdu[0]))
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
        if len(body) != 2 + 2 * count or body[1] != 2 * count:
            raise ModbusError("a reply of %d bytes to a read of %d registers" % (len(body), count))
        return list(struct.unpack(">%dH" % count, body[2:]))

    def write_registers(self, first, values):
        self.request(struct.pack(">BHHB%dH" % len(values), 16, first, len(values), 2 * len(values), *values))

    def get_position(self, position, signed=False):
        low, high = self.read_holding(mem_register(position), 2)
        return words_to_u32(low, high, signed)

    def set_position(self, position, value):
        self.write_registers(mem_register(position), list(u32_to_words(value)))
