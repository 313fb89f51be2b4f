"""Start-up: configuration -> board -> data model -> engine -> transports -> event loop."""

import gc
import sys

from mbnode.datamodel import DataModel, TABLE_NAMES
from mbnode.devid import DeviceIdentification
from mbnode.loop import Loop
from mbnode.pdu import Engine


def build(cfg, board, model=None):
    """Everything the slave needs, wired together; returns (loop, ready line)."""
    if model is None:
        model = DataModel()
    model.set_present([cfg["channels"][name] for name in TABLE_NAMES])
    engine = Engine(model, DeviceIdentification(cfg["identity"], cfg["unit_id"]))
    loop = Loop()
    board.start(loop, model, cfg["board"])
    parts = ["ready"]
    if cfg["tcp"]["enabled"]:
        gc.collect()  # start-up garbage out of the way before the connection buffers
        from mbnode.tcp import TcpSlave

        tcp = TcpSlave(loop, engine, cfg["tcp"], cfg["unit_id"])
        parts.append("tcp %s:%d" % tcp.address)
    if cfg["rtu"]["enabled"]:
        parts.extend(start_rtu(loop, engine, cfg, board))
    parts.append("unit %d" % cfg["unit_id"])
    parts.extend(board.describe())
    return loop, " ".join(parts)


def start_rtu(loop, engine, cfg, board):
    """Modbus RTU on the board's serial port; returns the words for the ready line."""
    from mbnode.diag import LineDiagnostics
    from mbnode.rtu import RtuServer
    from mbnode.rtulink import RtuLink, char_times

    rtu = cfg["rtu"]
    try:
        port = board.open_rtu(rtu, cfg["board"])
    except ValueError as e:
        print("config: %s" % e, file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        print("rtu: cannot open the serial port: %s" % e, file=sys.stderr)
        sys.exit(1)
    t15, t35 = char_times(rtu["baud"], rtu["parity"], rtu["stopbits"])
    RtuLink(loop, RtuServer(engine, LineDiagnostics(), cfg["unit_id"]), port, t15, t35, rtu["early_reply"])
    return ["rtu", port.name, "serial", "%d-8%s%d" % (rtu["baud"], rtu["parity"], rtu["stopbits"])]


def load_config(path, board):
    """Checked configuration; the config module is unloaded afterwards to give its RAM back."""
    import mbnode
    from mbnode import config

    try:
        return config.load(path, board.CONFIG_SCHEMA)
    except config.ConfigError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    finally:
        del sys.modules["mbnode.config"]
        delattr(mbnode, "config")
        gc.collect()


def run(config_path="config.json"):
    # The data model's 5 KB register buffer comes first, while the heap is still one piece.
    model = DataModel()
    import board

    loop, ready = build(load_config(config_path, board), board, model)
    print(ready)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
