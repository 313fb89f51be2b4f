"""The board section of a pin board's configuration: its keys, with the board's defaults, and
the check of every pin against what the chip and the board allow (docs/boards.md).

Start-up only, like mbnode.config: startup.load_config unloads this module, the chip's facts
(chip_<chip>.py) and the board's defaults (board_config.py) once the configuration is checked.
Every refusal is one line: the key, its value, what is wrong with which pin, what is allowed.
"""

import json

from mbnode.datamodel import MEM_BASE, MEM_REGS, ONBOARD

_OUT = 0
_IN = 1
_ADC = 2
_ROLE_WORDS = ("output pins ", "input pins ", "ADC pins ")
# The keys that hold pins, in the order they are checked, and what each pin must do: each RTU
# port's three (while its line is enabled), then the pin map's lists (while board.pins).
_KEYS = ("rtu_tx", "rtu_rx", "rtu_de", "rtu2_tx", "rtu2_rx", "rtu2_de", "do_pins", "di_pins", "ai_pins", "ao_pins",
         "led_pin")
_ROLES = (_OUT, _IN, _OUT, _OUT, _IN, _OUT, _OUT, _IN, _ADC, _OUT, _OUT)

# The longest the event loop can be held between two feeds of the watchdog, besides the feed
# interval (docs/reliability.md, "How long the loop can be held"): per loop step, the MQTT
# bridge's budget twice (a packet read, then its timer's turn), each serial line's send of the
# longest frame twice (a reply or request written whole, with DE held until its last stop bit),
# and an allowance for a save to flash and a garbage collection.
BRIDGE_MS = 2 * 1000  # mbnode.mqtt.bridge.BUDGET_MS per turn, two turns per loop step
FLASH_MS = 500  # a littlefs save of a small file, erasing and programming sectors
MARGIN_MS = 100  # gc.collect, the other handlers' own work (each well under a millisecond)


_NO_NET = "no network"
_NO_SSID = "no Wi-Fi configured (board.wifi_ssid)"


def rules(board):
    """(schema of the board section, default configuration, check) for mbnode.config.validate.
    board: the PinBoard (name, chip, has_wifi); board_config.py beside board.py holds the board's
    DEFAULTS and RESERVED."""
    import board_config

    chip = __import__("chip_" + board.chip)
    defaults = board_config.DEFAULTS
    b = defaults["board"]
    schema = {
        "pins": (True, "bool"),
        "scan_ms": (20, "int", 1, 10000),
        "do_pins": (b["do_pins"], "pins", ONBOARD),
        "di_pins": (b["di_pins"], "pins", ONBOARD),
        "ai_pins": (b["ai_pins"], "pins", ONBOARD),
        "ao_pins": (b["ao_pins"], "pins", ONBOARD),
        "rtu_uart": (b["rtu_uart"], "int", 0, 9),
        "rtu_tx": (b["rtu_tx"], "int", 0, 255),
        "rtu_rx": (b["rtu_rx"], "int", 0, 255),
        "rtu_de": (b["rtu_de"], "int", -1, 255),
        "rtu_de_invert": (False, "bool"),
        # The second serial line (rtu2): another UART and its pins; -1: not chosen.
        "rtu2_uart": (b.get("rtu2_uart", -1), "int", -1, 9),
        "rtu2_tx": (b.get("rtu2_tx", -1), "int", -1, 255),
        "rtu2_rx": (b.get("rtu2_rx", -1), "int", -1, 255),
        "rtu2_de": (b.get("rtu2_de", -1), "int", -1, 255),
        "rtu2_de_invert": (False, "bool"),
        # The watchdog (boards/common/watchdog.py): 0 off, else machine.WDT's timeout, started
        # wdt_delay_s after boot; and the status LED's pin (statusled.py), -1 none.
        "wdt_ms": (b.get("wdt_ms", 0), "int", 0, 8000),
        "wdt_delay_s": (b.get("wdt_delay_s", 30), "int", 0, 3600),
        "led_pin": (b.get("led_pin", -1), "int", -1, 255),
    }
    if board.has_wifi:
        schema["wifi_ssid"] = ("", "text", 32)
        schema["wifi_password"] = ("", "text", 64)
        schema["wifi_timeout"] = (20, "int", 1, 300)

    def check(cfg):
        return _check(cfg, board, chip, board_config.RESERVED, b.get("led_pin", -1))

    return schema, defaults, check


def _within(pin, ranges):
    for r in ranges:
        if r[0] <= pin <= r[1]:
            return r
    return None


def _problem(pin, role, chip, reserved, wifi):
    """What keeps `pin` from serving in `role`, or None (without allocating, the common case)."""
    if not _within(pin, chip.GPIOS):
        return "%s%d does not exist on the %s" % (chip.PIN, pin, chip.NAME)
    r = _within(pin, chip.UNUSABLE) or _within(pin, reserved)
    if r:
        return "%s%d %s" % (chip.PIN, pin, r[2])
    if role == _OUT and _within(pin, chip.INPUT_ONLY):
        return "%s%d is input-only" % (chip.PIN, pin)
    if role == _ADC:
        if _within(pin, chip.ADC2):
            if chip.ADC2_ALWAYS or wifi:
                return "%s%d %s" % (chip.PIN, pin, chip.ADC2_PROBLEM)
        elif not _within(pin, chip.ADC1):
            return "%s%d has no ADC" % (chip.PIN, pin)
    return None


def _text(prefix, pins):
    # [0, 1, 2, 5, 6] -> "GP0-2, 5, 6"
    parts = []
    i = 0
    while i < len(pins):
        j = i
        while j + 1 < len(pins) and pins[j + 1] == pins[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append("%d-%d" % (pins[i], pins[j]))
        else:
            parts.extend(str(p) for p in pins[i:j + 1])
        i = j + 1
    return prefix + ", ".join(parts)


def _usable(candidates, role, chip, reserved, wifi):
    return [p for p in candidates if _problem(p, role, chip, reserved, wifi) is None]


def _check(cfg, board, chip, reserved, board_led=-1):
    """One-line refusal of the configuration's pins, or None. Settles tcp.enabled on Wi-Fi boards
    (Modbus TCP is served once Wi-Fi is configured)."""
    b = cfg["board"]
    wifi = board.has_wifi and b["wifi_ssid"] != ""
    if not board.has_wifi:
        for section in ("tcp", "mqtt"):
            if cfg[section]["enabled"]:
                return "config: %s.enabled = true: board %s has no network; allowed false" % (section, board.name)
        if not cfg["rtu"]["enabled"]:
            return ("config: rtu.enabled = false: board %s has no network, Modbus RTU is all it can serve; "
                    "allowed true" % board.name)
    elif not wifi:
        if cfg["mqtt"]["enabled"]:
            return ("config: mqtt.enabled = true: allowed only with board.wifi_ssid set (board %s reaches a "
                    "broker over Wi-Fi)" % board.name)
        cfg["tcp"]["enabled"] = False
    if not wifi:
        # Modbus TCP peers of the master role need the network as much as the slave does.
        ext = cfg.get("extension") or {}
        for i, m in enumerate(ext.get("modules") or ()):
            if m["tcp"]:
                return ("config: extension.modules[%d].tcp = \"%s\": board %s has %s; allowed \"\" (a module "
                        "on a serial line)" % (i, m["tcp"], board.name, _NO_NET if not board.has_wifi else _NO_SSID))
        poller = cfg.get("poller") or {}
        for i, srv in enumerate(poller.get("servers") or ()):
            if srv.get("host"):
                return ("config: poller.servers[%d].host = \"%s\": board %s has %s; allowed a server on a serial "
                        "line (\"line\")" % (i, srv["host"], board.name, _NO_NET if not board.has_wifi else _NO_SSID))
    owner = bytearray(256)  # pin -> 1 + index of the key in _KEYS that has it
    if cfg["rtu2"]["enabled"]:
        if len(chip.UARTS) < 2:
            return ("config: rtu2.enabled = true: board %s has one UART for RS-485 (UART%d), so one serial line, "
                    "either slave or master (rtu.mode); allowed false" % (board.name, sorted(chip.UARTS)[0]))
        if cfg["rtu"]["enabled"] and b["rtu2_uart"] == b["rtu_uart"]:
            return "config: board.rtu2_uart = %d: board.rtu_uart has it; allowed %s" % (
                b["rtu2_uart"], ", ".join(str(u) for u in sorted(chip.UARTS) if u != b["rtu_uart"]))
        for key in ("rtu2_tx", "rtu2_rx"):
            if b[key] < 0:
                return "config: board.%s = -1: rtu2.enabled is true; allowed a GPIO number" % key
    for line, first in (("rtu", 0), ("rtu2", 3)):
        if not cfg[line]["enabled"]:
            continue
        uart = b[line + "_uart"]
        if uart not in chip.UARTS:
            return "config: board.%s_uart = %d: %s; allowed %s" % (
                line, uart, chip.UART_NOTE, ", ".join(str(u) for u in sorted(chip.UARTS)))
        routes = chip.UARTS[uart]
        for n in range(3):
            pin = b[_KEYS[first + n]]
            if pin >= 0:
                problem = _refuse(b, first + n, pin, routes[n] if routes and n < 2 else None, owner, chip, reserved,
                                  wifi)
                if problem:
                    return problem
    if b["pins"]:
        for n in range(6, 10):
            for pin in b[_KEYS[n]]:
                problem = _refuse(b, n, pin, None, owner, chip, reserved, wifi)
                if problem:
                    return problem
    io = cfg.get("io")  # the io section's modes (mbnode.ioconfig) act on the pin map
    if io and not b["pins"] and (io["di"] or io["ai"] or io["do"] or io["ao"]):
        return "config: board.pins = false: the io section has channels; allowed true (io acts on the pin map)"
    for i, e in enumerate(io["ai"] if io else ()):
        if e["source"] == "temp" and board.chip != "rp2040":
            return ("config: io.ai[%d].source = \"temp\": board %s has no RP2040 temperature sensor; allowed \"pin\""
                    % (i, board.name))
    led = b["led_pin"]
    if led >= 0:
        if led == board_led:  # the board's own LED pin (reserved for it): only the LED may have it
            if owner[led]:
                return "config: board.%s = %s: %s%d is the board's LED; allowed other pins" % (
                    _KEYS[owner[led] - 1], json.dumps(b[_KEYS[owner[led] - 1]]), chip.PIN, led)
            owner[led] = 11
        else:
            problem = _refuse(b, 10, led, None, owner, chip, reserved, wifi)
            if problem:
                return problem
    if b["wdt_ms"]:
        return _check_wdt(cfg, b["wdt_ms"])
    return None


def loop_hold_ms(cfg):
    """(the longest the loop can be held in one step, ms; what holds it longest)."""
    hold = MARGIN_MS
    what = "its own work"
    worst = 0
    if cfg["mqtt"]["enabled"]:
        hold += BRIDGE_MS
        what, worst = "the MQTT bridge's budget, twice", BRIDGE_MS
    for key in ("rtu", "rtu2"):
        line = cfg[key]
        if line["enabled"]:
            bits = 9 + (line["parity"] != "N") + line["stopbits"]
            ms = 2 * ((256 * bits * 1000 + line["baud"] - 1) // line["baud"])
            hold += ms
            if ms > worst:
                what, worst = "two 256-byte frames on %s at %d baud" % (key, line["baud"]), ms
    return hold + FLASH_MS, what


def _check_wdt(cfg, wdt_ms):
    # The feed interval is wdt_ms // 4; a feed comes at most that plus the loop's hold late.
    host = cfg["mqtt"].get("host", "")
    if cfg["mqtt"]["enabled"] and not (host.count(".") == 3 and host.replace(".", "").isdigit()):
        return ("config: board.wdt_ms = %d: mqtt.host %s is looked up by name, which blocks the loop outside any "
                "bound (seconds when the DNS server does not answer); allowed 0 (off), or mqtt.host as an IPv4 "
                "address" % (wdt_ms, json.dumps(host)))
    hold, what = loop_hold_ms(cfg)
    least = (4 * hold + 2) // 3
    if wdt_ms >= least:
        return None
    if least > 8000:
        return ("config: board.wdt_ms = %d: the loop can be held up to %d ms (%s, a save to flash); allowed 0 "
                "(off): no timeout up to 8000 ms covers that (lower the load: faster baud rates, no MQTT)"
                % (wdt_ms, hold, what))
    return ("config: board.wdt_ms = %d: the loop can be held up to %d ms (%s, a save to flash) plus the feed "
            "interval (wdt_ms / 4); allowed 0 (off) or %d..8000" % (wdt_ms, hold, what, least))


def _refuse(b, n, pin, route, owner, chip, reserved, wifi):
    """The one-line refusal of `pin` as b[_KEYS[n]], or None (and the pin is taken)."""
    key = _KEYS[n]
    role = _ROLES[n]
    problem = _problem(pin, role, chip, reserved, wifi)
    if problem:
        candidates = [p for r in chip.GPIOS for p in range(r[0], r[1] + 1)]
        allowed = _ROLE_WORDS[role] + _text(chip.PIN, _usable(candidates, role, chip, reserved, wifi))
    elif route is not None and pin not in route:
        what = "TX" if role == _OUT else "RX"
        uart = b[key.split("_")[0] + "_uart"]
        problem = "UART%d cannot %s on %s%d" % (uart, "send" if role == _OUT else "receive", chip.PIN, pin)
        allowed = "UART%d %s pins %s" % (uart, what, _text(chip.PIN, _usable(route, role, chip, reserved, wifi)))
    elif owner[pin]:
        problem = "%s%d is also board.%s" % (chip.PIN, pin, _KEYS[owner[pin] - 1])
        allowed = "each pin once"
    else:
        owner[pin] = n + 1
        return None
    return "config: board.%s = %s: %s; allowed %s" % (key, json.dumps(b[key]), problem, allowed)


def channels(pins, memory=True):
    """The channels a pin map makes present (board_config.py DEFAULTS): channel n of each kind
    is the n-th pin of its list, so onboard ranges start at 0x0000; plus the memory registers."""
    out = {}
    for table, key in (("coils", "do_pins"), ("discrete_inputs", "di_pins"), ("holding_registers", "ao_pins"),
                       ("input_registers", "ai_pins")):
        n = len(pins[key])
        out[table] = ["0x0000-0x%04X" % (n - 1)] if n else []
        if memory and table.endswith("registers"):
            out[table].append("0x%04X-0x%04X" % (MEM_BASE, MEM_BASE + MEM_REGS - 1))
    return out
