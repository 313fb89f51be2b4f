"""Start-up: configuration -> board -> data model -> engine -> transports -> event loop.

app.run calls start() and then forget(), which unloads this module (its functions and constants)
with the other start-up-only modules: once the parts are built only app.run stays."""

import gc
import sys

from mbnode.datamodel import DataModel

START_ONLY = True  # forget() unloads this module once the parts are built
config_refused = False  # load_config fell back to the board's defaults


def build(cfg, board, model=None):
    """Everything the slave needs, wired together; returns (loop, ready line)."""
    # run() has loaded these before the configuration check (see there); a test or the bench
    # may call build() directly.
    from mbnode.devid import DeviceIdentification
    from mbnode.loop import Loop
    from mbnode.pdu import Engine
    from mbnode.typenames import TABLE_NAMES  # unloaded again by forget()

    if model is None:
        model = DataModel()
    from mbnode.health import Health

    health = Health()
    if config_refused:
        health.fault = 1  # mbnode.health.FAULT_CONFIG
    system = cfg.get("system")  # present only when configured (mbnode.sysconfig)
    saved = None
    if system and system["enabled"]:
        from mbnode.sysstart import overlay

        saved = overlay(cfg)  # saved settings over config.json, before anything uses them
    model.set_present([cfg["channels"][name] for name in TABLE_NAMES])
    engine = Engine(model, DeviceIdentification(cfg["identity"], cfg["unit_id"]))
    loop = Loop()
    board.start(loop, model, cfg["board"])
    parts = ["ready"]
    if "io" in cfg:  # input and output modes (mbnode.ioconfig): power-on values before any transport
        from mbnode.iobuild import start as start_io

        io_words = start_io(loop, engine, model, cfg["io"], board)
    tcp = None
    if cfg["tcp"]["enabled"]:
        gc.collect()  # start-up garbage out of the way before the connection buffers
        from mbnode.tcp import TcpSlave

        try:
            tcp = TcpSlave(loop, engine, cfg["tcp"], cfg["unit_id"])
        except OSError as e:
            from mbnode.listenerror import cannot_listen

            cannot_listen("tcp", cfg["tcp"]["host"], cfg["tcp"]["port"], e)
        parts.append("tcp %s:%d" % tcp.address)
        health.tcp = tcp
    masters = None
    ext = cfg.get("extension")  # present only when configured (mbnode.extconfig)
    slave_line = None  # the name of the line this device is a slave on, if any
    for key in ("rtu", "rtu2"):
        line = cfg[key]
        if not line["enabled"]:
            continue
        if line["mode"] == "slave":
            parts.extend(_slave_line(loop, engine, cfg, board, key, health))
            slave_line = line["name"]
            continue
        if masters is None:
            from mbnode.masters import Masters

            masters = Masters(loop)
        parts.extend(_master_line(loop, cfg, board, key, masters, health))
    gw = cfg["gateway"]
    if gw["enabled"]:
        from mbnode.tcpgateway import TcpGateway

        TcpGateway(tcp, masters.rtu(gw["line"]) if gw["line"] else masters.first(), gw)
        parts.append("gateway %s" % (",".join(str(u) for u in gw["units"]) or "other-units"))
    parts.append("unit %d" % cfg["unit_id"])
    if "io" in cfg:
        parts.extend(io_words)
    if saved is not None:
        from mbnode.sysstart import start as start_system

        parts.extend(start_system(loop, engine, cfg, board, health, saved))
    if ext and ext["modules"]:
        from mbnode.extension import start

        if masters is None:
            from mbnode.masters import Masters

            masters = Masters(loop)
        parts.extend(start(loop, engine, model, cfg, masters))
    publishers = []  # optional parts that publish through the MQTT bridge (mbnode.mqtt.bridge.start)
    poll = cfg.get("poller")  # present only when configured (mbnode.pollconfig)
    if poll and poll["enabled"]:
        from mbnode.poller import start as start_poller

        if masters is None:
            from mbnode.masters import Masters

            masters = Masters(loop)
        poller = start_poller(loop, engine, model, masters, cfg)
        publishers.append(poller)
        parts.append("poller %d" % len(poller.servers))
    fs = cfg.get("failsafe")  # present only when configured (mbnode.failsafeconfig)
    if fs and fs["enabled"]:
        from mbnode.failsafebuild import start as start_failsafe

        publishers.append(start_failsafe(loop, engine, model, health, fs))
        parts.append("failsafe %dms" % fs["timeout_ms"])
    if cfg["mqtt"]["enabled"]:
        gc.collect()
        from mbnode.mqtt.bridge import start

        # masters None (no master line, extension or poller): the gateway makes them at its
        # first remote request (mbnode.mqtt.relay.Relay._masters).
        parts.extend(start(loop, engine, model, cfg, board, tcp, masters, slave_line, publishers))
    if hasattr(board, "watch"):  # a pin board's watchdog and status LED (board.wdt_ms, board.led_pin)
        parts.extend(board.watch(loop, engine, health))
    if cfg.get("protect"):  # write protection (present only when configured: mbnode.protectconfig);
        from mbnode.protect import Guard  # set before the loop serves anything

        engine.guard = Guard(cfg["protect"])
        parts += ("protect", str(engine.guard.ranges))
    if "retain" in cfg or "custom_block" in cfg:  # last: restored memory reaches every subscriber
        from mbnode import retainboot  # start-up only: it unloads itself

        parts.extend(retainboot.start(loop, engine, model, cfg, health))
    parts.extend(board.describe())
    return loop, " ".join(parts)


def _slave_line(loop, engine, cfg, board, key, health):
    """Serial line `key` in slave mode: the Modbus RTU slave's link (mbnode.rtulink) on the
    board's port; health gets the line's diagnostics and the link. Returns the ready line's words."""
    from mbnode.diag import LineDiagnostics
    from mbnode.rtu import RtuServer, char_times
    from mbnode.rtulink import RtuLink

    line = cfg[key]
    port, words = open_port(board, cfg, key)
    char, t35 = char_times(line["baud"], line["parity"], line["stopbits"])
    diag = LineDiagnostics()
    link = RtuLink(loop, RtuServer(engine, diag, cfg["unit_id"]), port, char, t35, line["early_reply"])
    health.line = diag
    health.link = link
    return words


def _master_line(loop, cfg, board, key, masters, health):
    """Serial line `key` in master mode: its RtuMaster, registered by the line's name (and in
    health.masters, whose lines saves to flash hold: mbnode.retain)."""
    from mbnode.rtumaster import RtuMaster

    line = cfg[key]
    port, words = open_port(board, cfg, key)
    # Room in the line's queue for every user at once: each TCP client of the gateway (one
    # request each), the MQTT gateway's jobs, each extension module's poll and every
    # write-through, and 8 more (docs/master.md).
    ext = cfg.get("extension")
    queue = 8 + (cfg["tcp"]["max_clients"] if cfg["gateway"]["enabled"] else 0) + (
        cfg["mqtt"]["parallel"] if cfg["mqtt"]["enabled"] else 0) + (
        len(ext["modules"]) + ext["writes"] if ext else 0)
    poll = cfg.get("poller")
    if poll and poll["enabled"]:  # the poller's servers on this line, and its alarms' writes to them
        from mbnode.pollbuild import line_slots

        queue += line_slots(poll, line["name"])
    m = RtuMaster(loop, port, line["baud"], line["parity"], line["stopbits"], queue)
    masters.add(line["name"], m)
    health.masters += (m,)
    return words + [key + "_mode", "master"]


def open_port(board, cfg, key="rtu"):
    """The board's serial port for line `key` ("rtu", "rtu2") with its settings, and the ready
    line's words for it; exits, as a bad configuration does, when the port cannot be had."""
    import sys

    line = cfg[key]
    try:
        port = board.open_rtu(line, cfg["board"], key)
    except ValueError as e:
        print("config: %s" % e, file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        print("%s: cannot open the serial port: %s" % (key, e), file=sys.stderr)
        sys.exit(1)
    return port, [key, port.name, "serial" if key == "rtu" else key + "_serial",
                  "%d-8%s%d" % (line["baud"], line["parity"], line["stopbits"])]


def load_config(path, board):
    """Checked configuration; the modules that checked it are unloaded afterwards to give their
    RAM back (config.py, the mqtt section's checks, the board's defaults and pin rules).

    A bad or missing file: the simulator (board.KEEP_SERVING false) prints the one-line error
    and exits with status 2; a board prints it and starts with its default configuration. A
    missing file is how a board starts before it was configured (an image, a mip install):
    its defaults are what it was asked for, no fault. A file that is there and refused is a
    fault: the defaults then come with the system registers, where status register 0x200F
    shows it."""
    import mbnode

    loaded = set(sys.modules)
    from mbnode import config

    try:
        rules = board.config_rules() if hasattr(board, "config_rules") else (board.CONFIG_SCHEMA,)
        try:
            return config.load(path, *rules)
        except config.ConfigError as e:
            if not getattr(board, "KEEP_SERVING", False):
                print(e, file=sys.stderr)
                sys.exit(2)
            print("%s; starting with the defaults of board %s" % (e, board.NAME), file=sys.stderr)
            import os

            try:
                os.stat(path)
            except OSError:  # not configured yet: the defaults, no fault
                return config.validate({}, *rules)
            global config_refused
            config_refused = True  # a fault the device shows (Health.fault, mbnode.health)
            # The board's defaults and the system registers (their own defaults, no NTP: no
            # network is configured), so that a master can read the fault in 0x200F.
            return config.validate({"system": {"ntp": ""}}, *rules)
    finally:
        for name in set(sys.modules) - loaded:
            if name.startswith("mbnode."):
                del sys.modules[name]
                if "." not in name[7:]:  # a subpackage's modules go with it (mbnode.mqtt)
                    delattr(mbnode, name[7:])
            elif "." not in name:  # a board's start-up modules
                del sys.modules[name]
        gc.collect()


def forget():
    """Once the parts are built, the start-up code goes (as .mpy on a board without frozen
    firmware its bytecode is on the heap; docs/benchmarks.md, "The cabinet module's heap"): this
    module is unloaded (its functions and constants; app.run keeps serving), and so are the
    functions a loaded module names in its START_ONLY tuple (its start(), what only that calls; a
    module's own promise that nothing calls them once the parts are built). A module whose
    START_ONLY is True is used by no part once they are built (mbnode.startup, mbnode.typenames,
    mbnode.memory32) and is unloaded: its constants go only with it (who needs it later imports
    it again)."""
    import mbnode

    for key, m in list(sys.modules.items()):
        names = getattr(m, "START_ONLY", None)
        if names is True:
            del sys.modules[key]
            if key.startswith("mbnode.") and "." not in key[7:]:
                delattr(mbnode, key[7:])
        elif names:
            for name in names:
                delattr(m, name)
            delattr(m, "START_ONLY")
    gc.collect()


def start(config_path):
    """The checked configuration's parts, built: (loop, ready line)."""
    # The data model's 5 KB register buffer comes first, while the heap is still one piece.
    model = DataModel()
    import board

    # The code every configuration runs, loaded before the configuration is checked: the
    # check's garbage is then freed above it in one piece, where the transports' buffers go.
    # Loaded after it (as before), it sat among the check's leftovers and the smallest heap
    # of the simulator was 5 KiB larger (docs/benchmarks.md).
    import mbnode.devid  # noqa: F401
    import mbnode.loop  # noqa: F401
    import mbnode.pdu  # noqa: F401

    cfg = load_config(config_path, board)
    # The checked configuration copied, once the check's modules and garbage are gone
    # (mbnode/packed.py; loaded for that alone and unloaded again).
    from mbnode import packed

    cfg = packed.copy(cfg)
    del sys.modules["mbnode.packed"]
    delattr(mbnode, "packed")
    gc.collect()
    return build(cfg, board, model)  # the configuration is not kept: build's parts hold what they need
