"""The rules every `mbnode` subcommand follows (docs/cli.md, host/mbnode_host/clitools.py):
exit codes 0/1/2/130 run into by each command where it can be, --json documents read back with
json and checked against an independent client (pymodbus) or the files themselves, --help
showing every default, progress on stderr (a bar on a terminal, lines otherwise), `mbnode
devices` on a made-up port list and on this machine's, and the docs' tables."""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from conftest import ROOT
from mbnode.memory32 import mem_register
from mbnode_host import cli, clitools, devices, image
from mbtest import cli as run_cli
from mbtest import pymodbus_client, unit

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "host"), str(ROOT / "firmware")]))


def subcommands():
    p = cli.parser()
    [sub] = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sub.choices


def one_line(r, code):
    """`r` ended with `code`, one line on stderr, nothing on stdout, no Python text."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.count("\n") == 1, (r.stdout, r.stderr)
    for python_text in ("Traceback", "Error:", "Exception"):
        assert python_text not in r.stderr, r.stderr
    return r.stderr.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- --help shows every default ----------------------------------------------------------------

def test_every_option_with_a_default_shows_it():
    checked = 0
    for name, sp in subcommands().items():
        shown = " ".join(run_cli(name, "--help").stdout.split())
        for action in sp._actions:
            if not action.option_strings or action.help == "==SUPPRESS==":
                continue
            text = " ".join(clitools.HelpFormatter(name)._expand_help(action).split())
            assert text in shown, (name, action.option_strings, text)
            if action.nargs == 0:  # a flag: off unless given
                continue
            if action.default is not None:
                assert "(default: %s)" % (action.default,) in text, (name, action.option_strings, text)
                checked += 1
            if "default" in text:
                assert "(default: " in text, (name, action.option_strings, text)  # one form everywhere
    assert checked >= 6  # sim --bits --heap, sim-io --io --timeout, mem --tcp --unit --timeout, probe --turnaround


def test_help_names_the_exit_codes_and_every_command():
    r = run_cli("--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "0 done, 1 error, 2 usage or configuration, 130 interrupted" in text
    for name in subcommands():
        assert name in text


# ---- exit codes: each command into each class it can reach here ----------------------------------

@pytest.mark.parametrize("args, words", [
    ([], "the following arguments are required: COMMAND"),
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["sim", "--heap", "12Q"], "--heap 12Q: allowed a number of bytes"),
    (["sim", "--tcp", "127.0.0.1:70000"], "--tcp 127.0.0.1:70000: allowed HOST:PORT"),
    (["sim", "--baud", "9600"], "--baud needs --rtu pty|PATH"),
    (["sim-io", "--io", "127.0.0.1", "get", "do", "0"], "--io 127.0.0.1: allowed HOST:PORT"),
    (["sim-io", "get", "do", "x"], "ADDR x: allowed a decimal or 0x hex integer"),
    (["mem", "get", "0"], "POSITION 0: allowed 1..1024"),
    (["build"], "--board is needed: allowed esp32"),
    (["build", "--board", "avr"], "board 'avr': allowed esp32"),
    (["build", "--board", "pico", "--arch", "z80"], "arch 'z80': allowed"),
    (["deploy", "--board", "pico"], "the following arguments are required: --port"),
    (["deploy", "--board", "avr", "--port", "socket://127.0.0.1:9"], "board 'avr': allowed"),
    (["deploy", "--board", "pico", "--port", "socket://127.0.0.1:9", "--wifi", "plant:x"], "board pico has no Wi-Fi"),
    (["probe", "/dev/null", "--ids", "0-9"], "ids '0-9': each id must be in 1..247"),
    (["probe", "/dev/null", "--parity", "X"], "parity 'X'"),
    (["probe", "/dev/null", "--baud", "fast"], "baud rate 'fast'"),
    (["probe", "tcp://:x"], "expected tcp://HOST:PORT"),
    (["probe", "/dev/null", "--timeout", "0"], "--timeout 0.0: expected seconds"),
    (["devices", "--bogus"], "unrecognized arguments: --bogus"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_usage_errors_exit_2(args, words):
    line = one_line(run_cli(*args, timeout=120), clitools.USAGE)
    assert words in line, line


def test_config_errors_exit_2(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"rtu": {"baud": 0}}')
    line = one_line(run_cli("deploy", "--board", "pico", "--port", "socket://127.0.0.1:9", "--config", cfg,
                            timeout=120), clitools.USAGE)
    assert line.startswith("mbnode deploy: --config %s: " % cfg) and "rtu.baud" in line, line
    r = subprocess.run(cli_argv("sim", "--config", cfg, "--tcp", "127.0.0.1:0", "--io", "127.0.0.1:0"),
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert r.returncode == clitools.USAGE and r.stderr.startswith("config: %s: rtu.baud = 0" % cfg), r


def cli_argv(*args):
    return [sys.executable, "-m", "mbnode_host.cli"] + [str(a) for a in args]


def test_errors_exit_1(tmp_path):
    port = free_port()  # nothing listens there
    one_line(run_cli("sim-io", "--io", "127.0.0.1:%d" % port, "get", "do", "0"), clitools.ERROR)
    one_line(run_cli("mem", "--tcp", "127.0.0.1:%d" % port, "get", "1"), clitools.ERROR)
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    assert "is not an mbnode build" in one_line(run_cli("build", "--board", "pico", "--out", keep), clitools.ERROR)
    assert "no such port" in one_line(run_cli("probe", str(tmp_path / "ttyUSB9")), clitools.ERROR)
    # deploy: mpremote cannot reach the board (its progress lines come first, then the one error)
    r = run_cli("deploy", "--board", "pico", "--port", "socket://127.0.0.1:%d" % port, timeout=180)
    assert r.returncode == clitools.ERROR and r.stdout == "", r
    assert r.stderr.splitlines()[-1].startswith("mbnode deploy: mpremote failed"), r.stderr
    assert "Traceback" not in r.stderr


def test_probe_that_finds_nothing_exits_1_with_its_report(tmp_path):
    """A TCP address that accepts and never answers a Modbus request: the report still comes on
    stdout (JSON), the verdict is one line on stderr and status 1."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        r = run_cli("probe", "tcp://127.0.0.1:%d" % srv.getsockname()[1], "--ids", "1-2", "--timeout", "0.05",
                    "--json", timeout=60)
    assert r.returncode == clitools.ERROR, r
    report = json.loads(r.stdout)
    assert report["devices"] == [] and report["complete"] is True
    assert r.stderr.strip().splitlines() == [
        "mbnode probe: no device answered (%d requests); the report is on stdout" % report["stats"]["requests"]]


def test_ok_exits_0(tmp_path):
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("mbnode ")
    assert run_cli("devices").returncode == 0
    assert run_cli("build", "--board", "unix", "--out", tmp_path / "u").returncode == 0


def test_deploy_ctrl_c_exits_130_without_a_traceback():
    """A port that accepts and never answers: deploy waits on mpremote; Ctrl-C (SIGINT to the
    process group, as a terminal sends it) ends it with 130."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(120)
        p = subprocess.Popen(cli_argv("deploy", "--board", "pico", "--port",
                                      "socket://127.0.0.1:%d" % srv.getsockname()[1]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                             start_new_session=True)
        try:
            conn, _ = srv.accept()  # mpremote is connected and waits for the REPL
            with conn:
                os.killpg(p.pid, signal.SIGINT)
                out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert p.returncode == clitools.INTERRUPTED, (p.returncode, out, err)
    assert out == "" and "Traceback" not in err, err


# ---- --json ---------------------------------------------------------------------------------------

def test_mem_and_sim_io_json_against_pymodbus(sim_pool):
    s = sim_pool(32)
    io_addr = "%s:%d" % s.io
    tcp = "%s:%d" % (s.host, s.port)
    r = run_cli("mem", "--tcp", tcp, "--json", "set", "9", "-7")
    assert r.returncode == 0 and r.stderr == "", r
    doc = json.loads(r.stdout)
    assert doc == {"position": 9, "register": mem_register(9), "value": -7, "op": "set"}
    with pymodbus_client(s) as c:
        rr = c.read_holding_registers(doc["register"], count=2, **unit(1))
        assert not rr.isError(), rr
        low, high = rr.registers
    assert (high << 16 | low) == 2 ** 32 - 7  # lower half first (docs/register-map.md)
    doc = json.loads(run_cli("mem", "--tcp", tcp, "--json", "--signed", "get", "9").stdout)
    assert doc == {"position": 9, "register": mem_register(9), "value": -7, "op": "get"}

    assert json.loads(run_cli("sim-io", "--io", io_addr, "--json", "set", "ao", "3", "0x10", "17").stdout) == {
        "table": "ao", "address": 3, "values": [16, 17]}
    with pymodbus_client(s) as c:
        assert c.read_holding_registers(3, count=2, **unit(1)).registers == [16, 17]
    assert json.loads(run_cli("sim-io", "--io", io_addr, "--json", "get", "ao", "3", "2").stdout) == {
        "table": "ao", "address": 3, "values": [16, 17]}
    heap = json.loads(run_cli("sim-io", "--io", io_addr, "--json", "heap").stdout)
    assert set(heap) == {"alloc", "free"} and heap["alloc"] > 0 and heap["free"] > 0
    # errors stay one line on stderr with the same codes
    assert one_line(run_cli("sim-io", "--io", io_addr, "--json", "get", "do", "600"), 1) == \
        "mbnode sim-io: addresses 600..600 outside do 0..575"
    one_line(run_cli("mem", "--tcp", tcp, "--json", "get", "0"), 2)


def test_build_json_matches_the_files(tmp_path):
    out = tmp_path / "pico"
    r = run_cli("build", "--board", "pico", "--out", out, "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["board"] == "pico" and doc["arch"] == "armv6m" and doc["folder"] == str(out) and doc["image"] is None
    on_disk = {"device/" + p.relative_to(out / "device").as_posix(): p.stat().st_size
               for p in (out / "device").rglob("*") if p.is_file()}
    assert {f["path"]: f["bytes"] for f in doc["device_files"]} == on_disk
    assert doc["device_bytes"] == sum(on_disk.values())
    frozen = [p for p in (out / "frozen").rglob("*") if p.is_file()]
    assert (doc["frozen_files"], doc["frozen_bytes"]) == (len(frozen), sum(p.stat().st_size for p in frozen))


def test_json_lines_are_one_compact_line_each():
    buf = io.StringIO()
    clitools.print_json_line({"a": 1, "b": [1, 2]}, buf)
    clitools.print_json_line({"c": "ü"}, buf)
    assert buf.getvalue() == '{"a":1,"b":[1,2]}\n{"c":"ü"}\n'
    assert [json.loads(line) for line in buf.getvalue().splitlines()] == [{"a": 1, "b": [1, 2]}, {"c": "ü"}]


# ---- mbnode devices -------------------------------------------------------------------------------

def fake_port(device, vid=None, pid=None, serial_number=None, description="n/a", manufacturer=None, product=None):
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.serial_number = vid, pid, serial_number
    p.description, p.manufacturer, p.product = description, manufacturer, product
    return p


FAKE_PORTS = [
    fake_port("/dev/ttyS0"),
    fake_port("/dev/ttyUSB0", 0x1A86, 0x7523, None, "USB2.0-Serial"),
    fake_port("/dev/ttyACM1", 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB JTAG/serial debug unit",
              "Espressif", "USB JTAG/serial debug unit"),
    fake_port("/dev/ttyACM0", 0x2E8A, 0x0005, "E66038B7133A4F2C", "Board in FS mode - Board CDC",
              "MicroPython", "Board in FS mode"),
    fake_port("/dev/ttyACM2", 0x0483, 0x5740, "123", "STM32 Virtual ComPort"),
]


def test_devices_on_a_made_up_port_list(monkeypatch, capsys):
    monkeypatch.setattr(devices, "comports", lambda: list(FAKE_PORTS))
    assert cli.main(["devices", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["device"] for d in docs] == ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyUSB0", "/dev/ttyACM2", "/dev/ttyS0"]
    pico = docs[0]
    assert pico == {"device": "/dev/ttyACM0", "usb": "2e8a:0005", "serial_number": "E66038B7133A4F2C",
                    "manufacturer": "MicroPython", "product": "Board in FS mode",
                    "description": "Board in FS mode - Board CDC", "micropython": "yes",
                    "known_as": "MicroPython on an RP2040/RP2350 (Raspberry Pi Pico)", "boards": ["pico", "pico-w"]}
    by = {d["device"]: d for d in docs}
    assert (by["/dev/ttyACM1"]["usb"], by["/dev/ttyACM1"]["micropython"]) == ("303a:1001", "likely")
    assert by["/dev/ttyUSB0"]["micropython"] == "maybe"
    assert (by["/dev/ttyACM2"]["usb"], by["/dev/ttyACM2"]["micropython"]) == ("0483:5740", "no")
    assert by["/dev/ttyS0"] == {"device": "/dev/ttyS0", "usb": None, "serial_number": None, "manufacturer": None,
                                "product": None, "description": None, "micropython": "no", "known_as": None,
                                "boards": []}

    assert cli.main(["devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["DEVICE", "USB", "SERIAL", "MICROPYTHON", "DESCRIPTION"]
    assert lines[1].split()[:4] == ["/dev/ttyACM0", "2e8a:0005", "E66038B7133A4F2C", "yes"]
    assert lines[1].endswith("(--board pico|pico-w)")
    assert len(lines) == 1 + len(FAKE_PORTS)

    assert cli.main(["devices", "--micropython", "--json"]) == 0
    assert [d["device"] for d in json.loads(capsys.readouterr().out)] == ["/dev/ttyACM0", "/dev/ttyACM1",
                                                                          "/dev/ttyUSB0"]


def test_devices_with_no_ports(monkeypatch, capsys):
    monkeypatch.setattr(devices, "comports", lambda: [])
    assert cli.main(["devices", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli.main(["devices"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "mbnode devices: no serial ports\n"


def test_devices_on_this_machine():
    """The real call, in a process of its own; pyserial's list, asked here too, is the other side
    (no ports at all is a valid answer)."""
    r = run_cli("devices", "--json")
    assert r.returncode == 0 and r.stderr == "", r
    docs = json.loads(r.stdout)
    assert sorted(d["device"] for d in docs) == sorted(p.device for p in list_ports.comports())
    for d in docs:
        assert d["micropython"] in ("yes", "likely", "maybe", "no")
        assert d["usb"] is None or re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", d["usb"])


# ---- progress ------------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_a_bar_redrawn_in_place():
    t = Terminal()
    p = clitools.Progress(None, t)
    p.bar(0, 200, "copy")
    p.event("copy a.mpy (100 bytes)")
    p.bar(100, 200, "1/2 files", force=True)
    p.bar(200, 200, "2/2 files")
    p.clear()
    text = t.getvalue()
    assert "\r\x1b[K[------------------------]   0%  copy" in text
    assert "\r\x1b[K[############------------]  50%  1/2 files" in text
    assert "\r\x1b[K[########################] 100%  2/2 files" in text
    assert "\r\x1b[Kcopy a.mpy (100 bytes)\n" in text  # the event clears the bar, then its own line
    assert text.endswith("\r\x1b[K")


@pytest.mark.parametrize("mode, off_tty, want", [
    (None, "lines", "copy a.mpy (100 bytes)\n"),          # deploy, build: the steps as lines
    (None, "off", ""),                                     # probe: nothing off a terminal
    (True, "off", "50%  1/2 files\ncopy a.mpy (100 bytes)\n"),  # --progress: plain lines
    (False, "lines", ""),                                  # --quiet
])
def test_progress_off_a_terminal(mode, off_tty, want):
    s = io.StringIO()
    p = clitools.Progress(mode, s, off_tty=off_tty)
    p.bar(100, 200, "1/2 files")
    p.bar(150, 200, "within 2 s of the last line: not shown")
    p.event("copy a.mpy (100 bytes)")
    p.clear()
    assert s.getvalue() == want


MAKE_OUTPUT = b"""-- Configuring done
[  0%] Building ASM object pico-sdk/src/rp2040/boot_stage2/CMakeFiles/bs2_default.dir/compile_time_choice.S.o
[  4%] Building C object CMakeFiles/firmware.dir/py/mpstate.c.o
[ 13%] Building C object CMakeFiles/firmware.dir/py/obj.c.o
[ 55%] Building C object CMakeFiles/firmware.dir/py/vm.c.o
[100%] Linking CXX executable firmware.elf
[100%] Built target firmware
"""


def test_image_build_progress_follows_make(tmp_path):
    log = tmp_path / "log"
    t = Terminal()
    with open(log, "w") as f:
        image.follow_build(io.BytesIO(MAKE_OUTPUT), f, clitools.Progress(None, t))
    assert log.read_bytes() == MAKE_OUTPUT
    assert "[########################] 100%  building MicroPython" in t.getvalue()
    s = io.StringIO()
    with open(log, "w") as f:
        image.follow_build(io.BytesIO(MAKE_OUTPUT), f, clitools.Progress(None, s))
    assert s.getvalue().splitlines() == ["building MicroPython: 0%", "building MicroPython: 13%",
                                         "building MicroPython: 55%", "building MicroPython: 100%"]


# ---- the docs say the same ----------------------------------------------------------------------

def test_docs_exit_code_table_and_readme_command_table():
    doc = (ROOT / "docs" / "cli.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ", doc, re.M)
    assert [int(c) for c in rows[:len(clitools.EXIT_CODES)]] == [c for c, _ in clitools.EXIT_CODES]
    readme = (ROOT / "README.md").read_text()
    table = re.findall(r"^\| `mbnode ([a-z-]+)[^`]*` \|", readme, re.M)
    assert sorted(set(table)) == sorted(subcommands()), table
    per_command = " ".join(re.findall(r"^\| (`[a-z-]+`(?:, `[a-z-]+`)*) \|", doc, re.M))
    for name in subcommands():  # every command has its row in the exit-code table
        assert "`%s`" % name in per_command, (name, per_command)


def test_deploy_shows_a_bar_of_the_bytes_copied_and_prints_json(monkeypatch, capsys):
    """deploy's steps with mpremote and the board replaced (the real runs are in
    tests/mcu/test_deploy.py): on a terminal a bar of the bytes copied under the step lines,
    and --json the one document."""
    from mbnode_host import deploy

    facts = {"version": [1, 25, 0], "mpy": 0x306 | (4 << 10), "platform": "rp2",
             "machine": "Raspberry Pi Pico with RP2040", "release": "1.25.0", "files": {}, "root": [],
             "mbnode": [], "umqtt": False, "network": False, "frozen": None}
    monkeypatch.setattr(deploy, "device_facts", lambda port, want: facts)
    monkeypatch.setattr(deploy, "read_ready", lambda port: "ready rtu uart0 serial 19200-8E1 unit 1 board pico")

    def mpremote(args, timeout=300, stream=False):
        for i, word in enumerate(args):
            if word == "cp":
                stream("cp %s %s" % (args[i + 2], args[i + 3]))
        return ""

    monkeypatch.setattr(deploy, "_run", mpremote)
    t = Terminal()
    assert deploy.deploy("pico", "socket://127.0.0.1:9", json_out=True, progress=clitools.Progress(None, t)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["serving"] == "rtu uart0 serial 19200-8E1 unit 1 board pico" and doc["dry_run"] is False
    assert doc["config"] is True and doc["up_to_date"] == 0 and len(doc["copy"]) > 10
    total = sum(f["bytes"] for f in doc["copy"])
    shown = t.getvalue()
    for f in doc["copy"]:
        assert "copy %s (%d bytes)\n" % (f["path"], f["bytes"]) in shown
    steps = len(doc["copy"]) + 1  # and config.json
    assert "[########################] 100%%  %d/%d files  %s" % (steps, steps, clitools.kb(total + len(
        deploy.config_for("pico", None, None)[0]))) in shown
    assert shown.endswith("resetting the board and waiting for mbnode to start ...\n")
