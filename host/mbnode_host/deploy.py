"""`mbnode deploy`: put mbnode on a board that runs MicroPython, through its REPL, with mpremote.

    mbnode deploy --board NAME --port PORT [--config FILE] [--wifi SSID:PASS] [--dry-run]

1. Build the board's bundle (mbnode build) and the configuration to write: the board's default
   config.json, or FILE, with --wifi filled in; checked with the board's own rules first.
2. Ask the device (one `mpremote exec`): MicroPython version, .mpy version and architecture,
   platform, chip, the SHA-256 of every file of the bundle it already has, strays (a /board.py
   or a .py under /mbnode that would shadow our .mpy, modules of an older mbnode, also in
   /mbnode's subfolders such as mbnode/mqtt/), whether umqtt.simple is installed. A device that
   cannot load the bundle is refused with what to flash instead.
3. The plan: files to copy (missing or different), files to remove, config.json, umqtt.simple
   (with `mpremote mip` when the bridge is on and the device lacks it). --dry-run prints it and
   changes nothing (asking stops what the board runs, so it is soft-reset afterwards).
4. Carry it out in one mpremote session (progress per file on stderr), then soft-reset the board
   through its REPL, which runs boot.py and main.py as at power-up, and read the ready line that
   mbnode prints: the deploy fails if mbnode does not start.

A soft reset, not machine.reset(): a hard reset of a Pico re-enumerates its USB port and what the
board prints before the port is open again is lost.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from mbnode import VERSION
from mbnode_host import clitools

# Oldest MicroPython that loads mbnode's .mpy files: native code needs .mpy sub-version 3 (1.23+).
MIN_VERSION = (1, 23)
# rp2 before 1.24: UART.flush() returns while the last byte is still shifting out (docs/rtu.md).
MIN_VERSION_PORT = {"rp2": (1, 24)}
MPY_VERSION = 6
MPY_SUB_VERSION = 3

# sys.implementation._mpy >> 10 by mpy-cross -march name (py/persistentcode.h)
ARCH_CODES = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6, "armv7emsp": 7,
              "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11}
ARCH_NAMES = {v: k for k, v in ARCH_CODES.items()}

READY_TIMEOUT = 60  # s for mbnode to print its ready line after the reset (emulated boards are slow)


class DeployError(RuntimeError):
    """A deploy that cannot go on; the message says why and what to do (one line, exit 1)."""


class DeployUsageError(DeployError, clitools.UsageError):
    """Its arguments or configuration refused before the device is touched (exit 2)."""


def mpremote():
    venv = Path(sys.executable).parent / "mpremote"
    return str(venv) if venv.exists() else "mpremote"


# The device side of step 2: prints one JSON line. WANT is the list of paths to hash.
_FACTS = r'''
import sys, os, json
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
def _h(p):
    try:
        f = open(p, "rb")
    except OSError:
        return None
    if hashlib is None:
        return "?"
    s = hashlib.sha256()
    b = bytearray(512)
    while True:
        n = f.readinto(b)
        if not n:
            break
        s.update(memoryview(b)[:n])
    f.close()
    return binascii.hexlify(s.digest()).decode()
def _ls(d):
    try:
        return [e[0] for e in os.ilistdir(d)]
    except OSError:
        return []
def _tree(d, pre=""):
    # every file under d, as paths relative to it ("pdu.mpy", "mqtt/bridge.mpy")
    out = []
    try:
        for e in os.ilistdir(d):
            if e[1] == 0x4000:
                out += _tree(d + "/" + e[0], pre + e[0] + "/")
            else:
                out.append(pre + e[0])
    except OSError:
        pass
    return out
def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
try:
    import umqtt.simple
    _umqtt = True
except ImportError:  # also when installed but its socket import fails (a board without network)
    _umqtt = any(_exists(d + "/umqtt/simple." + x) for d in sys.path if d.startswith("/") for x in ("py", "mpy"))
try:
    import network
    _network = True
except ImportError:
    _network = False
def _frozen_version():
    # mbnode frozen into the firmware (the image), whatever the filesystem holds
    path = sys.path[:]
    sys.path[:] = [".frozen"]
    try:
        import mbnode
        return mbnode.VERSION
    except ImportError:
        return None
    finally:
        sys.path[:] = path
        sys.modules.pop("mbnode", None)
_frozen = _frozen_version()
_u = os.uname()
print(json.dumps({"version": list(sys.implementation.version[:3]), "mpy": getattr(sys.implementation, "_mpy", 0),
                  "platform": sys.platform, "machine": _u.machine, "release": _u.release,
                  "files": dict((p, _h(p)) for p in WANT), "root": _ls("/"), "mbnode": _tree("/mbnode"),
                  "umqtt": _umqtt, "network": _network, "frozen": _frozen}))
'''


def _run(args, timeout=300, stream=False):
    """Run mpremote; returns its stdout. DeployError with its last words when it fails."""
    cmd = [mpremote()] + args
    if not stream:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeployError("mpremote did not finish within %d s" % timeout)
        if r.returncode:
            raise DeployError("mpremote failed: %s" % _last_words(r.stdout + r.stderr))
        return r.stdout
    out = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        out.append(line)
        stream(line.rstrip("\n"))
        if time.monotonic() > deadline:
            proc.kill()
            raise DeployError("mpremote did not finish within %d s" % timeout)
    if proc.wait():
        raise DeployError("mpremote failed: %s" % _last_words("".join(out)))
    return "".join(out)


def _last_words(text):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def device_facts(port, want):
    code = "WANT = %r\n%s" % (list(want), _FACTS)
    out = _run(["connect", port, "exec", code], timeout=120)
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise DeployError("the device at %s did not answer like MicroPython: %s" % (port, _last_words(out)))


def check_device(board, facts):
    """DeployError saying what to flash when the device cannot run this board's bundle."""
    version = tuple(facts["version"][:2])
    shown = "MicroPython %s on %s (%s)" % (".".join(map(str, facts["version"])), facts["platform"], facts["machine"])
    mpy = facts["mpy"]
    arch = ARCH_NAMES.get(mpy >> 10, "none")
    image = (" or the mbnode image (mbnode build --board %s --image)" % board.name) if board.name == "pico" else ""
    flash = "flash MicroPython %s.%s or newer for %s%s" % (
        MIN_VERSION_PORT.get(board.port, MIN_VERSION) + (board.micropython_board, image))
    if facts["platform"] != board.port:
        raise DeployError("the device runs %s, not the %s port that board %s needs: pick the board that matches the "
                          "device, or %s" % (shown, board.port, board.name, flash))
    chip = facts["machine"].rsplit(" with ", 1)[-1].lower()
    if board.chip and chip != board.chip:
        raise DeployError("the device runs %s: its chip is %s, and board %s has %s: pick the board that "
                          "matches the device (mbnode build --help lists them)" % (shown, chip.upper(), board.name,
                                                                                 board.chip.upper()))
    if arch != board.arch:
        raise DeployError("the device runs %s, whose native code is %s, and board %s is built for %s: pick the "
                          "board that matches the device, or %s" % (shown, arch, board.name, board.arch, flash))
    if (mpy & 0xFF) != MPY_VERSION or ((mpy >> 8) & 3) != MPY_SUB_VERSION or version < MIN_VERSION:
        raise DeployError("the device runs %s (.mpy %d.%d); mbnode's .mpy files need .mpy %d.%d: %s"
                          % (shown, mpy & 0xFF, (mpy >> 8) & 3, MPY_VERSION, MPY_SUB_VERSION, flash))
    if facts.get("frozen") and facts["frozen"] != VERSION:
        raise DeployError("the device runs %s with mbnode %s frozen in, and this is mbnode %s: flash the image of "
                          "this version instead (mbnode build --board %s --image); a deployed copy would shadow the "
                          "frozen one" % (shown, facts["frozen"], VERSION, board.name))
    if board.wifi and not facts.get("network"):
        raise DeployError("the device runs %s, which has no network module, and board %s joins Wi-Fi: flash the "
                          "MicroPython firmware for %s, or pick a board without Wi-Fi" % (shown, board.name,
                                                                                        board.micropython_board))
    if version < MIN_VERSION_PORT.get(board.port, MIN_VERSION):
        raise DeployError("the device runs %s; on %s mbnode needs %d.%d or newer (UART.flush() of older releases "
                          "returns before the last byte is out, which cuts RTU replies): %s"
                          % ((shown, board.port) + MIN_VERSION_PORT[board.port] + (flash,)))


def _sha256(data):
    import hashlib

    return hashlib.sha256(data).hexdigest()


def plan(files, facts, config_bytes, want_umqtt):
    """What to do: {"copy": [paths], "remove": [paths], "config": bool, "umqtt": bool}. `files` maps
    device paths (without a leading /) to their bytes."""
    have = facts["files"]
    copy = [p for p, data in sorted(files.items()) if have.get("/" + p) != _sha256(data)]
    remove = []
    ours = set(files)
    if facts.get("frozen"):
        # The firmware carries this mbnode (check_device compared the versions): only config.json.
        # A copy on the filesystem would be imported instead (it comes first on sys.path) and
        # cost the heap that freezing saves, so ours go.
        copy = []
        remove = [p for p in sorted(files) if have.get("/" + p)]
        ours = set()
    # A source file beside an .mpy shadows it (MicroPython tries .py first); an .mpy of an older
    # mbnode whose module is gone would still be importable. facts["mbnode"]: every file under
    # /mbnode, subfolders included ("mqtt/bridge.mpy").
    for name in facts["mbnode"]:
        p = "mbnode/" + name
        if p not in ours and (name.endswith(".py") or name.endswith(".mpy")):
            remove.append(p)
    for name in facts["root"]:
        if name.endswith(".py") and name != "main.py" and name != "boot.py" and name[:-3] + ".mpy" in ours:
            remove.append(name)
    return {"copy": copy, "remove": sorted(set(remove)), "config": have.get("/config.json") != _sha256(config_bytes),
            "umqtt": want_umqtt and not facts["umqtt"]}


def folders(copy):
    """Every folder the files to copy need, parents first: ["mbnode", "mbnode/mqtt"]."""
    return sorted({"/".join(p.split("/")[:i]) for p in copy for i in range(1, p.count("/") + 1)})


def config_for(board_name, config_file, wifi):
    """(configuration text to write, mqtt enabled?): the given file or the board's defaults, with
    --wifi filled in, checked with the board's rules."""
    from mbnode import config
    from mbnode_host import boards, build

    if config_file:
        try:
            given = json.loads(Path(config_file).read_text())
        except OSError as e:
            raise DeployUsageError("--config %s: %s" % (config_file, e.strerror))
        except ValueError as e:
            raise DeployUsageError("--config %s is not valid JSON: %s" % (config_file, e))
    else:
        given = boards.default_config(board_name)
    if wifi:
        ssid, sep, password = wifi.partition(":")
        if not sep or not ssid:
            raise DeployUsageError("--wifi %r: allowed SSID:PASSWORD" % wifi)
        if not boards.info(board_name).wifi:
            raise DeployUsageError("--wifi: board %s has no Wi-Fi" % board_name)
        if type(given) is dict:
            given.setdefault("board", {})
            given["board"]["wifi_ssid"] = ssid
            given["board"]["wifi_password"] = password
    schema, defaults, check = boards.rules(board_name)
    try:
        cfg = config.validate(given, schema, defaults, check)
    except config.ConfigError as e:
        raise DeployUsageError("%s%s" % (("--config %s: " % config_file) if config_file else "", e))
    return build.config_text(given), cfg["mqtt"]["enabled"]


def install_umqtt(port, index=None, progress=None):
    """umqtt.simple onto the device with `mpremote mip` (from `index`, else mpremote's default)."""
    (progress or clitools.Progress()).event("installing umqtt.simple (mpremote mip) ...")
    _run(["connect", port, "mip", "install"] + (["--index", index] if index else []) + ["umqtt.simple"], timeout=300)


def _soft_reset(s):
    """Through the friendly REPL (Ctrl-D there runs boot.py and main.py, as at power-up), with
    whatever ran stopped first; mpremote leaves the raw REPL on exit anyway."""
    s.write(b"\r\x03\x03")
    time.sleep(0.1)
    s.write(b"\x02")
    time.sleep(0.1)
    s.reset_input_buffer()
    s.write(b"\x04")


def restart(port):
    """Soft-reset the board, so what it ran before (its main.py) runs again; waits for nothing."""
    import serial

    s = serial.serial_for_url(port, baudrate=115200, timeout=0.2)
    try:
        _soft_reset(s)
        s.flush()
    finally:
        s.close()


def read_ready(port, timeout=READY_TIMEOUT):
    """Soft-reset the board and return mbnode's ready line; DeployError with what it printed
    instead when it does not come."""
    import serial

    s = serial.serial_for_url(port, baudrate=115200, timeout=0.2)
    try:
        _soft_reset(s)
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen += s.read(256)
            for line in seen.decode(errors="replace").splitlines():
                if line.startswith("ready ") and seen.endswith(b"\n"):
                    return line.strip()
            if b"Traceback" in seen and seen.rstrip().endswith(b">>>"):
                break
        lines = [x for x in seen.decode(errors="replace").splitlines() if x.strip()]
        raise DeployError("mbnode did not start after the reset; the board printed: %s"
                          % (" | ".join(lines[-6:]) or "nothing"))
    finally:
        s.close()


def deploy(board_name, port, config_file=None, wifi=None, dry_run=False, mip_index=None, json_out=False,
           progress=None):
    """The whole deploy (module docstring); the bundle is built in a temporary folder, so build/
    (and a firmware image built there) is left alone. Steps go to `progress` (clitools.Progress:
    one line per step, a bar of the bytes copied on a terminal); the result to stdout, as text
    or (json_out) one JSON document."""
    import tempfile

    progress = progress or clitools.Progress()
    with tempfile.TemporaryDirectory(prefix="mbnode-deploy-") as tmp:
        result = _deploy(board_name, port, config_file, wifi, dry_run, mip_index, Path(tmp) / board_name, progress)
    if json_out:
        clitools.print_json({k: v for k, v in result.items() if k != "text"})
    else:
        print(result["text"])
    return clitools.OK


def _deploy(board_name, port, config_file, wifi, dry_run, mip_index, out, progress):
    from mbnode_host import boards, build

    _progress = progress.event
    board = boards.info(board_name)
    config_bytes, mqtt = config_for(board_name, config_file, wifi)
    config_bytes = config_bytes.encode()
    _progress("building the %s bundle ..." % board_name)
    bundle = build.bundle(board_name, out)
    device_dir = bundle.path / "device"
    files = {p.relative_to(device_dir).as_posix(): p.read_bytes()
             for p in sorted(device_dir.rglob("*")) if p.is_file() and p.name != "config.json"}
    _progress("asking the device at %s ..." % port)
    facts = device_facts(port, ["/" + p for p in files] + ["/config.json"])
    check_device(board, facts)
    todo = plan(files, facts, config_bytes, mqtt)
    device = "MicroPython %s on %s" % (".".join(map(str, facts["version"])), facts["machine"])
    frozen = ("mbnode %s is frozen in the firmware: nothing of the bundle is copied; " % facts["frozen"]
              if facts.get("frozen") else "")
    summary = "%s%d files up to date, %d to copy, %d to remove, config.json %s%s" % (
        frozen, len(files) - len(todo["copy"]) if not frozen else 0, len(todo["copy"]), len(todo["remove"]),
        "to write" if todo["config"] else "unchanged", ", umqtt.simple to install" if todo["umqtt"] else "")
    result = {"port": port, "board": board_name, "device": device, "micropython": facts["version"],
              "frozen": facts.get("frozen"), "dry_run": dry_run,
              "copy": [{"path": p, "bytes": len(files[p])} for p in todo["copy"]], "remove": todo["remove"],
              "up_to_date": 0 if frozen else len(files) - len(todo["copy"]),
              "config": todo["config"], "umqtt": todo["umqtt"], "serving": None}
    if dry_run:
        lines = ["device: " + device, summary]
        lines += ["copy %s (%d bytes)" % (p, len(files[p])) for p in todo["copy"]]
        lines += ["remove %s" % p for p in todo["remove"]]
        if todo["config"]:
            lines.append("write config.json (%d bytes)" % len(config_bytes))
        if todo["umqtt"]:
            lines.append("install umqtt.simple with mpremote mip")
        lines.append("then reset the board and check that mbnode starts")
        result["text"] = "\n".join(["plan (dry run, nothing changed):"] + ["  " + x for x in lines])
        restart(port)  # asking stopped what the board ran: let it run again
        return result
    _progress("device: " + device)
    _progress(summary)
    args = ["connect", port]
    dirs = folders(todo["copy"])
    if dirs:
        args += ["exec", "import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n        pass" % dirs]
    cfg_file = bundle.path / "config.json"
    cfg_file.write_bytes(config_bytes)
    steps = [(["fs", "cp", "-f", str(device_dir / p), ":" + p], "copy %s (%d bytes)" % (p, len(files[p])))
             for p in todo["copy"]]
    steps += [(["fs", "rm", ":" + p], "remove %s" % p) for p in todo["remove"]]
    if todo["config"]:
        steps.append((["fs", "cp", "-f", str(cfg_file), ":config.json"], "write config.json"))
    for cmd, _ in steps:
        if len(args) > 2:
            args.append("+")
        args += cmd
    if len(args) > 2:
        sizes = [len(files[p]) for p in todo["copy"]] + [0] * len(todo["remove"]) + (
            [len(config_bytes)] if todo["config"] else [])
        total = sum(sizes)
        names = iter(enumerate([label for _, label in steps]))
        done = [0, 0]  # steps started, bytes of the steps before the current one

        def show(line):
            # mpremote names each file as it starts on it ("cp SRC :DST", "rm :PATH").
            if re.match(r"^(cp|rm) ", line):
                i, label = next(names, (None, None))
                if label:
                    _progress(label)
                    done[1] = sum(sizes[:i])
                    progress.bar(done[1], total, "%d/%d files  %s/%s" % (i, len(steps), clitools.kb(done[1]),
                                                                         clitools.kb(total)))

        _run(args, stream=show)
        progress.bar(total, total, "%d/%d files  %s" % (len(steps), len(steps), clitools.kb(total)))
        progress.clear()
    if todo["umqtt"]:
        install_umqtt(port, mip_index, progress)
    _progress("resetting the board and waiting for mbnode to start ...")
    ready = read_ready(port)
    result["serving"] = ready[len("ready "):]
    result["text"] = "mbnode is serving on %s: %s" % (port, result["serving"])
    return result
