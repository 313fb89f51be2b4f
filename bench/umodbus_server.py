# MicroPython script: micropython-modbus 2.3.7 (import name `umodbus`) as a Modbus TCP slave on
# the unix port, with a map the shape of mbnode's bench load: 64 coils, 64 discrete inputs,
# 128 holding and 128 input registers, all at address 0 (one dict entry per address: umodbus
# flattens a list value into consecutive addresses).
#
#   micropython umodbus_server.py PORT [MAX_SECONDS [alloc WARM COUNT]]
#
# Prints "ready tcp 127.0.0.1:PORT" once bound, then calls ModbusTCP.process() in a loop, the way
# its README's TCP example does, until SIGINT or MAX_SECONDS. With "alloc" it prints
# "alloc BYTES COUNT" = heap bytes allocated over COUNT served requests after WARM warm-up ones
# (gc disabled meanwhile), then keeps serving.
#
# No stand-in modules are needed: umodbus/tcp.py imports only struct, socket and time, which the
# unix port has (umodbus/serial.py needs machine.UART, but ModbusTCP never imports it).
import gc
import sys
import time

from umodbus.tcp import ModbusTCP

REGISTERS = {
    "COILS": {"coils": {"register": 0, "val": [False] * 64}},
    "ISTS": {"dis": {"register": 0, "val": [False] * 64}},
    "HREGS": {"hregs": {"register": 0, "val": [0] * 128}},
    "IREGS": {"iregs": {"register": 0, "val": [0] * 128}},
}


def main():
    port = int(sys.argv[1])
    max_ms = int(float(sys.argv[2]) * 1000) if len(sys.argv) > 2 else 600000
    alloc = sys.argv[3:6] if len(sys.argv) > 5 and sys.argv[3] == "alloc" else None
    slave = ModbusTCP()
    slave.bind(local_ip="127.0.0.1", local_port=port)
    slave.setup_registers(registers=REGISTERS)
    print("ready tcp 127.0.0.1:%d" % port)
    serve(slave, max_ms, alloc, 255)


def serve(slave, max_ms, alloc, check_mask):
    """process() in a loop for max_ms (checked every check_mask + 1 turns); with alloc = ("alloc",
    WARM, COUNT) print "alloc BYTES COUNT" over COUNT requests after WARM. The RTU server too."""
    start = time.ticks_ms()
    served = 0
    mark = None
    warm, count = (int(alloc[1]), int(alloc[2])) if alloc else (-1, -1)
    loops = 0
    while True:
        if slave.process():
            served += 1
            if served == warm:
                gc.collect()
                gc.disable()
                mark = gc.mem_alloc()
            elif mark is not None and served == warm + count:
                used = gc.mem_alloc() - mark
                gc.enable()
                print("alloc %d %d" % (used, count))
                mark = None
        loops += 1
        if loops & check_mask == 0 and time.ticks_diff(time.ticks_ms(), start) > max_ms:
            break

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
