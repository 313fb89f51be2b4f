"""The `mbnode` command: one parser block per subcommand, the work in a module of its own.
The rules every subcommand follows (exit codes, --json, --help defaults, progress) are in
clitools.py and docs/cli.md."""

import argparse
import socket
import sys

from mbnode import VERSION
from mbnode_host import clitools
from mbnode_host.clitools import Parser, UsageError, add_json_option  # noqa: F401 (Parser, UsageError: API)


def _sim(args):
    from mbnode_host import sim

    return sim.run(args)


SIM_IO_FORMS = ("get TABLE ADDR [COUNT] | set TABLE ADDR V1 [V2 ...] | heap | save | saved (TABLE: do, di, ao, ai, "
                "mem); with an io section: field TABLE ADDR [COUNT] | pulse di ADDR COUNT HIGH_MS [LOW_MS]")
_TABLES = ("do", "di", "ao", "ai", "mem")


def _number(word, what, low=None):
    try:
        n = int(word, 0)
    except ValueError:
        raise UsageError("%s %s: allowed a decimal or 0x hex integer" % (what, word))
    if low is not None and n < low:
        raise UsageError("%s %s: allowed %d or more" % (what, word, low))
    return n


def sim_io_request(words):
    """The control channel's request line for `mbnode sim-io WORDS`, or UsageError."""
    if words[:1] in (["heap"], ["save"], ["saved"]):
        if len(words) > 1:
            raise UsageError("%s takes no arguments; allowed: %s" % (words[0], SIM_IO_FORMS))
        return words[0]
    if words[:2] == ["pulse", "di"]:
        if len(words) not in (5, 6):
            raise UsageError("pulse di takes ADDR COUNT HIGH_MS [LOW_MS]; allowed: " + SIM_IO_FORMS)
        for w, what, low in zip(words[2:], ("ADDR", "COUNT", "HIGH_MS", "LOW_MS"), (0, 1, 0, 0)):
            _number(w, what, low)
        return " ".join(words)
    if words[:1] == ["field"] and words[1:2] != ["mem"]:
        words = ["get"] + words[1:]  # checked as a get, sent as itself
        return "field " + sim_io_request(words)[4:]
    if len(words) < 3 or words[0] not in ("get", "set") or words[1] not in _TABLES:
        raise UsageError("%s: allowed: %s" % (" ".join(words) or "no request", SIM_IO_FORMS))
    op, table = words[0], words[1]
    _number(words[2], "ADDR", 0)
    if op == "get":
        if len(words) > 4:
            raise UsageError("get takes ADDR and COUNT only, got %d values; allowed: %s" % (len(words) - 2, SIM_IO_FORMS))
        if len(words) == 4:
            _number(words[3], "COUNT", 1)
    else:
        if len(words) < 4:
            raise UsageError("set needs at least one value; allowed: " + SIM_IO_FORMS)
        for w in words[3:]:
            _number(w, "value", None if table == "mem" else 0)
    return " ".join(words)


def sim_io_result(words, values):
    """The JSON document of `mbnode sim-io --json WORDS` from the reply's values."""
    numbers = [int(v) for v in values]
    if words[0] == "heap":
        return {"alloc": numbers[0], "free": numbers[1]}
    if words[0] == "save":
        return {"generation": numbers[0]}
    if words[0] == "saved":
        return {"generation": numbers[0], "flash_writes": numbers[1]}
    if words[0] == "set":
        numbers = [int(w, 0) for w in words[3:]]
    return {"table": words[1], "address": int(words[2], 0), "values": numbers}


def _connect(host, port, what, timeout):
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror:
        raise OSError("cannot resolve %s" % host)
    except ConnectionRefusedError:
        raise OSError("no %s at %s:%d (nothing listens there); start the simulator with `mbnode sim`"
                      % (what, host, port))
    except socket.timeout:
        raise OSError("no answer from %s:%d within %g s" % (host, port, timeout))


def _timeout(seconds):
    if not 0 < seconds <= 3600:
        raise UsageError("--timeout %g: allowed more than 0 and at most 3600 seconds" % seconds)
    return seconds


def _sim_io(args):
    from mbnode_host.sim import parse_hostport

    line = sim_io_request(args.words)
    host, port = parse_hostport(args.io, "--io")
    timeout = _timeout(args.timeout)
    with _connect(host, port, "simulator", timeout) as s:
        try:
            s.sendall(line.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("the simulator at %s:%d closed the connection without a reply" % (host, port))
                reply += chunk
        except socket.timeout:
            raise OSError("no reply from the simulator at %s:%d within %g s" % (host, port, timeout))
    text = reply.decode(errors="replace").strip()
    if text == "ok" or text.startswith("ok "):
        if args.json:
            clitools.print_json(sim_io_result(args.words, text[3:].split()))
        elif text[3:]:
            print(text[3:])
        return 0
    print("mbnode sim-io: %s" % (text[4:] if text.startswith("err ") else text), file=sys.stderr)
    return 1


def _mem(args):
    from mbnode_host.client import ModbusError, TcpClient
    from mbnode_host.sim import parse_hostport

    forms = "get POSITION | set POSITION VALUE (POSITION 1..1024; VALUE -2147483648..4294967295, 0x hex allowed)"
    words = args.words
    if not words or words[0] not in ("get", "set") or len(words) != (2 if words[0] == "get" else 3):
        raise UsageError("%s: allowed: %s" % (" ".join(words) or "no request", forms))
    position = _number(words[1], "POSITION")
    if not 1 <= position <= 1024:
        raise UsageError("POSITION %s: allowed 1..1024" % words[1])
    value = None
    if words[0] == "set":
        value = _number(words[2], "VALUE")
        if not -2 ** 31 <= value < 2 ** 32:
            raise UsageError("VALUE %s: allowed -2147483648..4294967295" % words[2])
    if not 0 <= args.unit <= 255:
        raise UsageError("--unit %d: allowed 0..255" % args.unit)
    host, port = parse_hostport(args.tcp, "--tcp")
    timeout = _timeout(args.timeout)
    c = TcpClient(_connect(host, port, "Modbus TCP slave", timeout), args.unit)
    try:
        if value is None:
            value = c.get_position(position, args.signed)
            if not args.json:
                print(value)
        else:
            c.set_position(position, value)
        if args.json:
            from mbnode.memory32 import mem_register

            clitools.print_json({"position": position, "register": mem_register(position), "value": value,
                                 "op": words[0]})
    except socket.timeout:
        raise OSError("no reply from unit %d at %s:%d within %g s (is the unit id right?)" % (args.unit, host, port, timeout))
    except ModbusError as e:
        raise OSError("unit %d at %s:%d: %s" % (args.unit, host, port, e))
    finally:
        c.close()
    return 0


# The names `mbnode build --target` took before boards had their own folders.
_TARGETS = {"esp32": ("esp32", None), "esp32c3": ("esp32-c3", None), "rp2": ("pico", None),
            "unix-32": ("unix", "x86"), "unix-64": ("unix", "x64")}


def _build(args):
    from mbnode_host import boards, build

    board, arch = args.board, args.arch
    if args.target is not None:
        if board is not None:
            raise UsageError("--target is the old name of --board: give one of them")
        if args.target not in _TARGETS:
            raise UsageError("target %r: allowed %s (or --board %s)" % (args.target, ", ".join(sorted(_TARGETS)),
                                                                       ", ".join(boards.names())))
        board, target_arch = _TARGETS[args.target]
        arch = arch or target_arch
        print("mbnode build: --target %s is --board %s%s" % (args.target, board, " --arch " + arch if arch else ""),
              file=sys.stderr)
    if board is None:
        raise UsageError("--board is needed: allowed %s" % ", ".join(boards.names()))
    b = build.bundle(board, args.out, arch)
    frozen = sorted(p for p in (b.path / "frozen").rglob("*") if p.is_file())
    result = {"board": board, "arch": b.arch, "folder": str(b.path),
              "device_files": [{"path": "device/" + name, "bytes": size} for name, size in b.device_files],
              "device_bytes": b.total,
              "frozen_files": len(frozen), "frozen_bytes": sum(p.stat().st_size for p in frozen), "image": None}
    width = max(len(name) for name, _ in b.device_files) + len("device/")
    if not args.json:
        for name, size in b.device_files:
            print("%-*s %7d" % (width, "device/" + name, size))
        print("%-*s %7d bytes in %d files (.mpy for %s)" % (width, "device total", b.total, len(b.device_files),
                                                          b.arch))
        print("%-*s %7d bytes in %d files (manifest.py and the sources it freezes)"
              % (width, "frozen total", result["frozen_bytes"], len(frozen)))
    if args.image:
        from mbnode_host import image

        bin_path, uf2_path = image.build_image(b, clitools.Progress(args.progress))
        result["image"] = {"bin": str(bin_path), "bin_bytes": bin_path.stat().st_size,
                           "uf2": str(uf2_path), "uf2_bytes": uf2_path.stat().st_size}
    if args.json:
        clitools.print_json(result)
        return 0
    if not args.image:
        print(b.path)
        return 0
    print("%-*s %7d bytes (MicroPython with mbnode frozen, flash image)" % (width, bin_path.name, bin_path.stat().st_size))
    print("%-*s %7d bytes (the same for the USB boot loader: drag it onto RPI-RP2)"
          % (width, uf2_path.name, uf2_path.stat().st_size))
    print(uf2_path)
    return 0


def _deploy(args):
    from mbnode_host import deploy

    return deploy.deploy(args.board, args.port, args.config, args.wifi, args.dry_run, args.mip_index,
                         json_out=args.json, progress=clitools.Progress(args.progress))


def _devices(args):
    from mbnode_host import devices

    return devices.run(args)


def _probe(args):
    from mbnode_host import probe

    return probe.run(args)


def _map(args):
    from mbnode_host import regmap

    return regmap.run(args)


def _export(args):
    from mbnode_host import export

    return export.run(args)


def _interval(text):
    from mbnode_host import export

    return export.interval(text)

def _monitor(args):
    from mbnode_host import monitor

    try:
        return monitor.run(args)
    except monitor.UsageError as e:
        raise UsageError(str(e))


def board_names():
    from mbnode_host import boards

    return boards.names()


def parser():
    p = Parser(prog="mbnode", description="mbnode host tools. Exit status of every command: 0 done, 1 error, "
                                          "2 usage or configuration, 130 interrupted (docs/cli.md).")
    p.add_argument("--version", action="version", version="mbnode %s" % VERSION)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("sim", help="run the firmware on the MicroPython unix port",
                       description="Run the firmware on the MicroPython unix port (docs/simulator.md). Exit 0: "
                                   "stopped by SIGINT/SIGTERM, 1: could not start, 2: bad arguments or "
                                   "configuration, 4: the firmware asked for a reboot.")
    s.add_argument("--config", help="JSON configuration file (default: built-in defaults)")
    s.add_argument("--tcp", help="Modbus TCP HOST:PORT (port 0: pick one) (default: tcp.host and tcp.port "
                                 "of --config, else 127.0.0.1:5020)")
    s.add_argument("--unit", type=int, help="unit id, 0 answers every id (default: unit_id of --config, else 1)")
    s.add_argument("--io", help="I/O control channel HOST:PORT (default: board.io of --config, else the TCP "
                                "port + 1 or, when that is taken, a free port)")
    s.add_argument("--bits", type=int, choices=(32, 64), default=32, help="unix port word size")
    s.add_argument("--heap", default="256K", help="MicroPython heap size, e.g. 32K (the bridge compiled from "
                                                  "source needs more than 128K)")
    s.add_argument("--mpy", action="store_true", help="run the firmware compiled to .mpy")
    s.add_argument("--rtu", metavar="pty|PATH",
                   help="also serve Modbus RTU: on a new pty pair (its client end is printed in the ready "
                        "line) or on the serial device / pty at PATH (default: no RTU)")
    s.add_argument("--baud", type=int, help="RTU baud rate (default: rtu.baud of --config, else 19200)")
    s.add_argument("--parity", choices=("N", "E", "O"), help="RTU parity (default: rtu.parity of --config, else E)")
    s.add_argument("--stopbits", type=int, choices=(1, 2), help="RTU stop bits (default: rtu.stopbits of --config, else 1, 2 without parity)")
    s.add_argument("--no-tcp", action="store_true", help="do not serve Modbus TCP")
    s.add_argument("--keep-serving", action="store_true",
                   help="act as a board on a refused configuration: the firmware prints the refusal and serves "
                        "the defaults with this command line's TCP, control channel and RTU options, status "
                        "register 0x200F showing the fault (default: the refusal, exit 2)")
    s.set_defaults(func=_sim)

    s = sub.add_parser("sim-io", help="set inputs / read outputs of a running simulator",
                       description="One request to a running simulator's I/O control channel "
                                   "(docs/simulator.md): " + SIM_IO_FORMS + ". Exit 0: done, 1: refused or "
                                   "no simulator, 2: bad arguments, 130: interrupted.")
    s.add_argument("--io", default="127.0.0.1:5021", help="control channel HOST:PORT")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the reply")
    add_json_option(s, "the reply")
    s.add_argument("words", nargs="*", metavar="REQUEST", help=SIM_IO_FORMS)
    s.set_defaults(func=_sim_io)

    s = sub.add_parser("mem", help="read or write a 32-bit memory position over Modbus TCP",
                       description="mbnode mem get POSITION | set POSITION VALUE: a memory position 1..1024 "
                                   "(two holding registers) of a Modbus TCP slave; VALUE -2147483648..4294967295, "
                                   "0x hex allowed. Exit 0: done, 1: refused or no slave, 2: bad arguments, "
                                   "130: interrupted.")
    s.add_argument("--tcp", default="127.0.0.1:5020", help="slave HOST:PORT")
    s.add_argument("--unit", type=int, default=1, help="unit id 0..255")
    s.add_argument("--signed", action="store_true", help="print as signed 32-bit")
    s.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the connection and each reply")
    add_json_option(s, "the position and its value")
    s.add_argument("words", nargs="*", metavar="get POSITION | set POSITION VALUE")
    s.set_defaults(func=_mem)

    s = sub.add_parser("build", help="the firmware of a board: .mpy bundle, config.json, manifest.py",
                       description="Write build/BOARD/: device/ (the .mpy bundle, main.py and the board's "
                                   "config.json, for the board's filesystem) and frozen/ (manifest.py and the "
                                   "sources it freezes into a MicroPython firmware); print the sizes, and the "
                                   "folder as the last line (docs/boards.md).")
    s.add_argument("--board", help="board name: %s" % ", ".join(board_names()))
    s.add_argument("--arch", help="mpy-cross -march instead of the board's, e.g. armv7m (default: the board's)")
    s.add_argument("--out", help="output folder (default: build/BOARD)")
    s.add_argument("--target", help=argparse.SUPPRESS)  # the old name: esp32, esp32c3, rp2, unix-32, unix-64
    s.add_argument("--image", action="store_true",
                   help="also build a complete MicroPython firmware with mbnode frozen in (board pico: "
                        "build/pico/mbnode-pico.uf2 and .bin; needs make setup-mcu)")
    add_json_option(s, "the files and sizes")
    clitools.add_progress_options(s, "lines")
    s.set_defaults(func=_build)

    s = sub.add_parser("deploy", help="install mbnode on a board running MicroPython (mpremote)",
                       description="Build the board's bundle, check the device's MicroPython, copy what changed, "
                                   "write config.json, reset and check that mbnode starts (docs/boards.md).")
    s.add_argument("--board", required=True, help="board name: %s" % ", ".join(board_names()))
    s.add_argument("--port", required=True,
                   help="the board's REPL: a device (/dev/ttyACM0, see mbnode devices) or a URL mpremote "
                        "connects to (socket://127.0.0.1:7701, rfc2217://HOST:PORT)")
    s.add_argument("--config", help="configuration file to write as config.json (default: the board's defaults)")
    s.add_argument("--wifi", metavar="SSID:PASS", help="Wi-Fi network to join (sets board.wifi_ssid/wifi_password)")
    s.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    s.add_argument("--mip-index", metavar="URL", help="package index for mpremote mip (default: mpremote's)")
    add_json_option(s, "the device, the plan and the ready line")
    clitools.add_progress_options(s, "lines")
    s.set_defaults(func=_deploy)

    s = sub.add_parser("probe", help="find a Modbus device on a serial line or TCP address, identify and map it",
                       description="Find a Modbus slave without knowing its settings (docs/probe.md). "
                                   "Exit 0: found, 1: none found or error, 2: bad arguments, 130: interrupted.")
    s.add_argument("port", help="serial device (/dev/ttyUSB0), pyserial URL (rfc2217://HOST:PORT, "
                                "socket://HOST:PORT) or tcp://HOST[:PORT] for Modbus TCP")
    s.add_argument("--baud", help="baud rates to try, e.g. 9600,19200 (default: 9600,19200,38400,57600,"
                                  "115200,1200,2400,4800)")
    s.add_argument("--parity", help="parities to try: E, N, O or several, e.g. E,N (default: E,N,O; "
                                    "stop bits 1 with parity, 2 without)")
    s.add_argument("--ids", help="unit ids to try, e.g. 1-10,17 (default: 1-247; over TCP also 0 and 255, "
                                 "0-255 allowed)")
    s.add_argument("--timeout", type=float, help="fixed wait per request in seconds (default: from the "
                                                  "baud rate and frame lengths, see --turnaround)")
    s.add_argument("--turnaround", type=float, default=0.040,
                   help="seconds of device processing + host latency added to the wire times")
    s.add_argument("--listen", type=float, metavar="SECONDS",
                   help="first listen SECONDS at each setting for bus traffic and start where it is "
                        "(default: no listening)")
    s.add_argument("--all", action="store_true", help="after a find, scan the other ids at that setting too")
    s.add_argument("--no-identify", action="store_true", help="only discover: no identification, no map")
    s.add_argument("--no-map", action="store_true", help="identify but do not map the address space")
    add_json_option(s)
    clitools.add_progress_options(s, "off")
    s.set_defaults(func=_probe)

    # issue 13: the register map as data, and its exports (docs/register-map.md, docs/integrations.md)
    s = sub.add_parser("map", help="the register map of a configuration (ranges, values, access) as a table or JSON",
                       description="The device's register map as configured, from the checked configuration and "
                                   "the firmware's own map (docs/register-map.md). Addresses 0-based. Exit 0: done, "
                                   "2: bad arguments or configuration.")
    s.add_argument("--config", help="JSON configuration file (default: the board's defaults)")
    s.add_argument("--board", default="unix", choices=board_names(), metavar="NAME",
                   help="board whose rules and defaults apply (unix: the simulator): %s (default: unix)"
                        % ", ".join(board_names()))
    s.add_argument("--json", action="store_true", help="print the map as JSON")
    s.set_defaults(func=_map)

    s = sub.add_parser("export", help="the register map as Home Assistant, ESPHome, Node-RED or CSV configuration",
                       description="The register map (mbnode map) as a Home Assistant modbus: block, ESPHome "
                                   "modbus_controller entities, a Node-RED flow or CSV (docs/integrations.md). "
                                   "Exit 0: done, 1: cannot write --out, 2: bad arguments or configuration.")
    s.add_argument("--format", required=True, choices=("ha", "esphome", "nodered", "csv"), help="output format")
    s.add_argument("--config", help="JSON configuration file (default: the board's defaults)")
    s.add_argument("--board", default="unix", choices=board_names(), metavar="NAME",
                   help="board (unix: the simulator): %s (default: unix)" % ", ".join(board_names()))
    s.add_argument("--host", metavar="HOST[:PORT]", help="the device's address for ha and nodered (default: tcp.host "
                                                         "and tcp.port of the configuration; 0.0.0.0 as 127.0.0.1)")
    s.add_argument("--serial", metavar="PORT", help="ha and nodered: a serial hub on this port (of the machine "
                                                    "that polls) instead of TCP (default: TCP when tcp.enabled)")
    s.add_argument("--interval", type=_interval, default=10, help="scan interval / update interval / poll rate, s "
                                                            "(default: 10)")
    s.add_argument("--out", help="write to this file (default: standard output)")
    s.set_defaults(func=_export)

    s = sub.add_parser("devices", help="list serial ports with USB ids; mark MicroPython boards",
                       description="The serial ports of this machine with device path, USB vid:pid, serial "
                                   "number and description; MICROPYTHON says whether the USB id is MicroPython's "
                                   "own (yes), an Espressif chip's built-in USB (likely) or a USB-UART bridge "
                                   "(maybe) (docs/cli.md). No ports is no error. Exit 0: listed, 130: "
                                   "interrupted.")
    s.add_argument("--micropython", action="store_true", help="only the ports that may be a MicroPython board")
    add_json_option(s, "the ports")
    s.set_defaults(func=_devices)

    s = sub.add_parser("monitor", help="watch a Modbus RTU line passively: one line per transaction",
                       description="Listen on an RS-485 line without sending (docs/monitor.md): frames by "
                                   "length, CRC and silence, requests paired with responses, one line per "
                                   "transaction, CRC error and noise burst; a summary on Ctrl-C or when the "
                                   "port goes away. Exit 130: stopped with Ctrl-C or SIGTERM, 1: the port "
                                   "cannot be opened or went away, 2: bad arguments.")
    s.add_argument("port", help="serial device (/dev/ttyUSB0) or pyserial URL (rfc2217://HOST:PORT, "
                                "socket://HOST:PORT)")
    s.add_argument("--baud", type=int, default=19200, help="baud rate (default: 19200)")
    s.add_argument("--parity", type=str.upper, choices=("N", "E", "O"), default="E", help="parity (default: E)")
    s.add_argument("--stopbits", type=int, choices=(1, 2),
                   help="stop bits (default: 1 with parity, 2 without)")
    s.add_argument("--timeout", type=float, default=1.0,
                   help="seconds after which a request counts as unanswered (default: 1.0)")
    s.add_argument("--gap", type=float, help="silence in seconds that ends a frame of unknown length "
                                             "(default: t3.5 of the setting + 0.020 for host latency)")
    s.add_argument("--json", action="store_true", help="one JSON object per line: transactions, CRC errors, "
                                                      "noise, then the summary")
    s.set_defaults(func=_monitor)
    return p


def main(argv=None):
    try:
        args = parser().parse_args(argv)
    except KeyboardInterrupt:
        return clitools.INTERRUPTED
    if args.command == "sim" and not args.rtu:
        given = [o for o in ("baud", "parity", "stopbits") if getattr(args, o) is not None]
        if given or args.no_tcp:
            parser().error("--%s needs --rtu pty|PATH" % (given[0] if given else "no-tcp").replace("_", "-"))
    return clitools.guard(args.command, args.func, args)


if __name__ == "__main__":
    sys.exit(main())
