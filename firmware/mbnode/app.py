"""Start-up: configuration -> board -> data model -> engine -> transports -> event loop."""

import gc
import sys

from mbnode.datamodel import DataModel, TABLE_NAMES


def build(cfg, board, model=None):
    """Everything the slave needs, wired together; returns (loop, ready line)."""
    # Imported here, not at the top: the configuration is checked (and its module unloaded
    # again) before these arrive, so the two never take RAM at the same time.
    from mbnode.devid import DeviceIdentification
    from mbnode.loop import Loop
    from mbnode.pdu import Engine

    if model is None:
        model = DataModel()
    model.set_present([cfg["channels"][name] for name in TABLE_NAMES])
    engine = Engine(model, DeviceIdentification(cfg["identity"], cfg["unit_id"]))
    loop = Loop()
    board.start(loop, model, cfg["board"])
    parts = ["ready"]
    tcp = None
    if cfg["tcp"]["enabled"]:
        gc.collect()  # start-up garbage out of the way before the connection buffers
        from mbnode.tcp import TcpSlave

        tcp = TcpSlave(loop, engine, cfg["tcp"], cfg["unit_id"])
        parts.append("tcp %s:%d" % tcp.address)
    if cfg["rtu"]["enabled"] and cfg["rtu"]["mode"] == "slave":
        from mbnode.rtulink import start

        parts.extend(start(loop, engine, cfg, board))
    parts.append("unit %d" % cfg["unit_id"])
    if cfg["mqtt"]["enabled"]:
        gc.collect()
        from mbnode.mqtt import start

        parts.extend(start(loop, engine, model, cfg, board, tcp))
    parts.extend(board.describe())
    return loop, " ".join(parts)


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
        # Also the mqtt section's checks, loaded only when the configuration has one.
        for name in ("config", "mqttconfig", "pointsconfig", "points"):
            if ("mbnode." + name) in sys.modules:
                del sys.modules["mbnode." + name]
                delattr(mbnode, name)
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
