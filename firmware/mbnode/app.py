"""Start-up: configuration -> board -> data model -> engine -> transports -> event loop."""

import gc
import sys

from mbnode.datamodel import DataModel


_config_refused = False  # load_config fell back to the board's defaults


def build(cfg, board, model=None):
    """Everything the slave needs, wired together; returns (loop, ready line)."""
    # run() has loaded these before the configuration check (see there); a test or the bench
    # may call build() directly.
    from mbnode.devid import DeviceIdentification
    from mbnode.loop import Loop
    from mbnode.pdu import Engine
    from mbnode.typenames import TABLE_NAMES  # unloaded again by _forget_start

    if model is None:
        model = DataModel()
    from mbnode.health import Health

    health = Health()
    if _config_refused:
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
            from mbnode.rtulink import start

            parts.extend(start(loop, engine, cfg, board, key, health))
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

        if masters is None:
            from mbnode.masters import Masters

            masters = Masters(loop)
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


def _master_line(loop, cfg, board, key, masters, health):
    """Serial line `key` in master mode: its RtuMaster, registered by the line's name (and in
    health.masters, whose lines saves to flash hold: mbnode.retain)."""
    from mbnode.rtu import open_port
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


def load_config(path, board):
    """Checked configuration; the modules that checked it are unloaded afterwards to give their
    RAM back (config.py, the mqtt section's checks, the board's defaults and pin rules).

    A bad or missing file: the simulator (board.KEEP_SERVING false) prints the one-line error
    and exits with status 2; a board prints it and starts with its default configuration and
    the system registers, where status register 0x200F shows the fault."""
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
            global _config_refused
            _config_refused = True  # a fault the device shows (Health.fault, mbnode.health)
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


def _forget_start():
    """Once the parts are built, the start-up code goes (as .mpy on a board without frozen
    firmware its bytecode is on the heap; docs/benchmarks.md, "The cabinet module's heap"): run()
    serves on, _start(), build(), load_config() and this function are gone from this module until
    it is imported anew, and so are the functions a loaded module names in its START_ONLY tuple
    (its start(), what only that calls; a module's own promise that nothing calls them once the
    parts are built). A module whose START_ONLY is True is used by no part once they are built
    (mbnode.typenames, mbnode.memory32) and is unloaded: its constants go only with it (who
    needs it later imports it again)."""
    import mbnode

    global _start, build, load_config, _master_line, _forget_start
    del _start, build, load_config, _master_line, _forget_start
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


def _start(config_path):
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


def run(config_path="config.json"):
    try:
        loop, ready = _start(config_path)
        _forget_start()
        print(ready)
        loop.run()
    except KeyboardInterrupt:  # SIGINT (mbnode sim turns SIGTERM into one): the normal way out
        r = sys.modules.get("mbnode.retain")
        if r and r.ACTIVE:
            r.ACTIVE.flush()  # retained memory's changes since its last save
    except MemoryError:
        # The heap is too small to start (`mbnode sim` then measures the smallest that does).
        # The simulator's board (KEEP_SERVING false) exits with status 3; a board stays at its REPL.
        print("mbnode: out of memory while starting", file=sys.stderr)
        if not getattr(sys.modules.get("board"), "KEEP_SERVING", True):
            sys.exit(3)
