"""pymodbus 3.x Modbus TCP server on CPython with a map the shape of the bench load:
64 coils, 64 discrete inputs, 128 holding and 128 input registers from address 0.

    python pymodbus_server.py PORT [MAX_SECONDS]

Serves on 127.0.0.1:PORT until SIGINT/SIGTERM or MAX_SECONDS (default 600). Prints
"ready tcp 127.0.0.1:PORT" once it accepts connections. Works with the older 3.x datastore API
(ModbusSlaveContext, slaves=) and the newer one (ModbusDeviceContext, devices=).
"""

import asyncio
import logging
import socket
import sys

import pymodbus.datastore as ds
from pymodbus.server import ModbusTcpServer


def context():
    # ModbusSequentialDataBlock(1, ...): protocol address 0 is the block's first value in both
    # the old API (which adds 1 to every address) and the new one (which subtracts 1 here).
    blocks = dict(co=ds.ModbusSequentialDataBlock(1, [False] * 64),
                  di=ds.ModbusSequentialDataBlock(1, [False] * 64),
                  hr=ds.ModbusSequentialDataBlock(1, [0] * 128),
                  ir=ds.ModbusSequentialDataBlock(1, [0] * 128))
    device = getattr(ds, "ModbusDeviceContext", None) or ds.ModbusSlaveContext
    return ds.ModbusServerContext(device(**blocks), single=True)


async def ready_when_listening(port):
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            print("ready tcp 127.0.0.1:%d" % port, flush=True)
            return
        except OSError:
            await asyncio.sleep(0.02)


async def main(port, max_seconds):
    server = ModbusTcpServer(context(), address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    await ready_when_listening(port)
    try:
        await asyncio.wait_for(task, max_seconds)
    except asyncio.TimeoutError:
        pass


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # no per-connection log lines
    socket.setdefaulttimeout(None)
    try:
        asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 600))
    except KeyboardInterrupt:
        pass
