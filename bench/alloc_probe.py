# MicroPython script: heap bytes allocated per request in steady state, through mbnode's whole
# TCP path (Loop.run -> poll -> _Conn.on_event -> readinto -> Engine.handle -> write) or RTU path
# (Loop.run -> poll -> RtuLink.on_event -> RtuServer.serve -> Engine.handle -> port.send).
#
#   MICROPYPATH=.frozen:boards/unix:firmware micropython alloc_probe.py tcp PORT WARM COUNT
#   MICROPYPATH=.frozen:boards/unix:firmware micropython alloc_probe.py rtu TTY BAUD PARITY STOP WARM COUNT
#
# Builds the firmware exactly as app.run() does (mbnode.startup.build with the unix board, the full
# map, no I/O control channel) and runs the real Loop.run(). The only addition is a counting
# stand-in for the engine, between the transport and Engine, which marks the phases by request number:
#
#   requests 0 .. WARM-1                 warm-up (first-use allocations may happen here)
#   request  WARM                        gc.collect(); gc.disable(); mark gc.mem_alloc()
#   request  WARM+COUNT                  mark again, print "alloc BYTES COUNT"; then heap_lock()
#   request  WARM+2*COUNT                heap_unlock(); the loop stops after this request
#
# The client (bench/alloc.py) sends exactly WARM+2*COUNT+1 requests in lock step, so each
# measured span covers COUNT complete request/response cycles of the loop. Under heap_lock an
# allocation raises MemoryError: inside the engine it becomes exception 04 (the client sees it),
# anywhere else it ends Loop.run and is printed as "locked MemoryError ...".
import gc
import sys

import micropython

import board
from mbnode import startup, config, rtulink, tcp


class Probe:
    def __init__(self, engine, loop, warm, count):
        self.engine = engine
        self.loop = loop
        self.warm = warm
        self.count = count
        self.n = 0
        self.a0 = 0

    def handle(self, req, ro, n, resp, wo):
        k = self.n
        if k == self.warm:
            gc.collect()
            gc.disable()
            self.a0 = gc.mem_alloc()
        elif k == self.warm + self.count:
            used = gc.mem_alloc() - self.a0
            gc.enable()
            print("alloc %d %d" % (used, self.count))
            gc.collect()
            micropython.heap_lock()
        elif k == self.warm + 2 * self.count:
            micropython.heap_unlock()
            self.loop.running = False
        self.n = k + 1
        return self.engine.handle(req, ro, n, resp, wo)


def kept(module, name):
    # The transport startup.build makes, without reaching into the loop's fields: module.name becomes
    # a subclass that keeps its instances (as tests/core/parts.py does).
    cls = getattr(module, name)
    instances = []

    class Kept(cls):
        def __init__(self, *args):
            cls.__init__(self, *args)
            instances.append(self)

    setattr(module, name, Kept)
    return instances


def main():
    if sys.argv[1] == "tcp":
        cfg = {"tcp": {"host": "127.0.0.1", "port": int(sys.argv[2]), "max_clients": 4}, "board": {"io": ""}}
        module, kind = tcp, "TcpSlave"
    else:
        path, baud, parity, stop = sys.argv[2:6]
        cfg = {"tcp": {"enabled": False}, "board": {"io": "", "rtu_device": path},
               "rtu": {"enabled": True, "baud": int(baud), "parity": parity, "stopbits": int(stop)}}
        module, kind = rtulink, "RtuLink"
    warm, count = int(sys.argv[-2]), int(sys.argv[-1])
    transports = kept(module, kind)
    loop, ready = startup.build(config.validate(cfg, *board.config_rules()), board)
    slave = transports[0] if module is tcp else transports[0].server
    probe = Probe(slave.engine, loop, warm, count)
    slave.engine = probe
    print(ready)
    try:
        loop.run()
        print("locked ok")
    except MemoryError as e:
        micropython.heap_unlock()
        print("locked MemoryError after request", probe.n, repr(e))
        sys.print_exception(e)
    if kind is TcpSlave:
        slave.shutdown()


main()
