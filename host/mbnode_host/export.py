"""`mbnode export`: the register map (mbnode_host.regmap) in the formats integrators load.

    ha        Home Assistant's `modbus:` YAML: one hub (type tcp, or serial with the slave line's
              settings), binary_sensors for discrete inputs and read-only coils, switches for
              coils (write_type coil, verify: read back), sensors for input and holding registers
              (input_type input | holding), data_type int16..float64 / string, swap word for
              32-bit values kept lower half first (the memory positions, the system blocks).
              Home Assistant's modbus integration has no number platform: a holding register is
              a sensor there, and a write goes through its modbus.write_register action.
    esphome   ESPHome's uart:, modbus: and modbus_controller: blocks and the entities:
              binary_sensor (register_type discrete_input | coil), switch (coil), sensor
              (register_type read | holding), number (writable holding registers), text_sensor
              (text: register_count, raw_encode ANSI), value_type U_WORD / S_WORD / U_DWORD_R /
              S_DWORD_R / FP32_R ... (_R: low word first).
    nodered   a Node-RED flow (node-red-contrib-modbus): a tab, a modbus-client config node, a
              modbus-read node per present range in pieces the device answers (at most
              mbnode.pdu's MAX_READ_REGS registers, MAX_BITS bits; memory in whole positions),
              and a modbus-write node per writable named value.
    csv       one row per named value: name, table, address (0-based, and the register number),
              count, type, word order, access, function codes, where it comes from.

Addresses are 0-based everywhere, as the PDU carries them and as all four take them. YAML is
written here (plain data, strings quoted as JSON, which YAML reads as double-quoted scalars), so
the host tools need no YAML library; the tests read it back with PyYAML.
"""

import csv
import io
import json
import re

from mbnode import pdu

FORMATS = ("ha", "esphome", "nodered", "csv")

_HA_TYPES = {"int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"}
_TABLE_FC = {"coils": (1, [5, 15]), "discrete_inputs": (2, []), "holding_registers": (3, [6, 16]),
             "input_registers": (4, [])}


# --- YAML ------------------------------------------------------------------------------------


def _scalar(v):
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) in (int, float):
        return repr(v)
    return json.dumps(v)  # a JSON string is a YAML double-quoted scalar


def yaml(obj, indent=0):
    """obj (dicts, lists, scalars) as block YAML lines."""
    pad = " " * indent
    out = []
    if type(obj) is dict:
        for k, v in obj.items():
            if type(v) in (dict, list) and v:
                out.append("%s%s:" % (pad, k))
                out.extend(yaml(v, indent + 2))
            else:
                out.append("%s%s: %s" % (pad, k, "{}" if v == {} else "[]" if v == [] else _scalar(v)))
    elif type(obj) is list:
        for item in obj:
            lines = yaml(item, indent + 2)
            if type(item) in (dict, list) and item:
                lines[0] = pad + "- " + lines[0][indent + 2:]
                out.extend(lines)
            else:
                out.append("%s- %s" % (pad, _scalar(item)))
    else:
        out.append(pad + _scalar(obj))
    return out


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "mbnode"


def _bits(v):
    return v["table"] in ("coils", "discrete_inputs")


def _writable(v):
    return v["access"] == "read-write"


def _wide(v):
    return v["type"] not in ("bool", "ascii", "hex") and v["count"] > 1


# --- Home Assistant ---------------------------------------------------------------------------


def ha_swap(v):
    """Home Assistant's swap for value v: word for 32/64-bit values lower half first, byte for
    registers whose bytes are swapped, word_byte for both, none otherwise."""
    words = _wide(v) and v.get("word_order") == "LE"
    swapped = v.get("byte_order") == "LE"
    return "word_byte" if words and swapped else "word" if words else "byte" if swapped else "none"


def ha_hub(m, host=None, port=None, serial_port=None):
    """The hub keys: tcp (host and port: the given ones, else the configuration's) or serial."""
    t = m["transports"]
    name = _slug(m["device_name"])
    if serial_port or not t["tcp"]["enabled"]:
        r = t["rtu"]
        return {"name": name, "type": "serial", "method": "rtu", "port": serial_port or "/dev/ttyUSB0",
                "baudrate": r["baud"], "bytesize": r["bytesize"], "parity": r["parity"], "stopbits": r["stopbits"]}
    h = host or t["tcp"]["host"]
    if h == "0.0.0.0":
        h = "127.0.0.1"
    return {"name": name, "type": "tcp", "host": h, "port": port or t["tcp"]["port"]}


def home_assistant(m, scan_interval=10, host=None, port=None, serial_port=None):
    hub = ha_hub(m, host, port, serial_port)
    prefix = m["device_name"] + " "
    slave = m["unit_id"]
    binary, switches, sensors = [], [], []
    for v in m["values"]:
        base = {"name": prefix + v["name"], "unique_id": "%s_%s" % (hub["name"], _slug(v["name"])),
                "slave": slave, "address": v["address"], "scan_interval": scan_interval}
        if _bits(v):
            if v["table"] == "coils" and _writable(v):
                switches.append(dict(base, write_type="coil", verify={}))
            else:
                binary.append(dict(base, input_type="coil" if v["table"] == "coils" else "discrete_input"))
            continue
        e = dict(base, input_type="input" if v["table"] == "input_registers" else "holding")
        if v["type"] in ("ascii", "hex"):
            e.update(data_type="string", count=v["count"])
        elif v["type"] in _HA_TYPES:
            e["data_type"] = v["type"]
            swap = ha_swap(v)
            if swap != "none":
                e["swap"] = swap
        else:
            continue  # int8/uint8 halves of a register: not a value of the map
        sensors.append(e)
    for key, entries in (("binary_sensors", binary), ("switches", switches), ("sensors", sensors)):
        if entries:
            hub[key] = entries
    head = ["# Home Assistant modbus: block for %s (unit %d), made by mbnode %s from its register map."
            % (m["device_name"], slave, m["mbnode"]),
            "# Addresses are 0-based. Holding registers are sensors (the modbus integration has no number",
            "# platform): write them with the modbus.write_register action (32-bit: lower half first)."]
    return "\n".join(head + yaml({"modbus": [hub]})) + "\n"


# --- ESPHome ----------------------------------------------------------------------------------


def esphome_value_type(v):
    """ESPHome's value_type for a register value, or None where it has none (byte-swapped)."""
    if v.get("byte_order") == "LE":
        return None
    t = v["type"]
    low_first = v.get("word_order") == "LE"
    r = "_R" if low_first else ""
    return {"uint16": "U_WORD", "int16": "S_WORD", "uint32": "U_DWORD" + r, "int32": "S_DWORD" + r,
            "float32": "FP32" + r, "uint64": "U_QWORD" + r, "int64": "S_QWORD" + r}.get(t)


_LIMITS = {"U_WORD": (0, 65535), "S_WORD": (-32768, 32767), "U_DWORD": (0, 4294967295),
           "S_DWORD": (-2147483648, 2147483647), "FP32": (-3.4e38, 3.4e38)}


def esphome(m, update_interval=10, tx_pin="GPIO17", rx_pin="GPIO16"):
    r = m["transports"]["rtu"]
    cid = _slug(m["device_name"])
    doc = {
        "uart": [{"id": cid + "_uart", "tx_pin": tx_pin, "rx_pin": rx_pin, "baud_rate": r["baud"], "data_bits": 8,
                  "parity": {"N": "NONE", "E": "EVEN", "O": "ODD"}[r["parity"]], "stop_bits": r["stopbits"]}],
        "modbus": [{"id": cid + "_modbus", "uart_id": cid + "_uart"}],
        "modbus_controller": [{"id": cid, "modbus_id": cid + "_modbus", "address": m["unit_id"],
                               "update_interval": "%ds" % update_interval}],
    }
    binary, switches, sensors, numbers, texts, skipped = [], [], [], [], [], []
    for v in m["values"]:
        base = {"platform": "modbus_controller", "modbus_controller_id": cid,
                "name": "%s %s" % (m["device_name"], v["name"]), "address": v["address"]}
        if _bits(v):
            if v["table"] == "coils" and _writable(v):
                switches.append(dict(base, register_type="coil"))
            else:
                binary.append(dict(base, register_type="coil" if v["table"] == "coils" else "discrete_input"))
            continue
        if v["type"] == "ascii":  # text: the registers' bytes, zero padding dropped (raw_encode ANSI)
            texts.append(dict(base, register_type="read" if v["table"] == "input_registers" else "holding",
                              register_count=v["count"], response_size=2 * v["count"], raw_encode="ANSI"))
            continue
        vt = esphome_value_type(v)
        if vt is None:
            skipped.append(v["name"])
            continue
        if v["table"] == "holding_registers" and _writable(v):
            lo, hi = _LIMITS[vt.replace("_R", "")] if vt.replace("_R", "") in _LIMITS else (None, None)
            n = dict(base, value_type=vt)
            if v["source"] == "channels" and v["address"] < 0x40:
                lo, hi = 0, 1023  # onboard AO: 10-bit (mbnode.datamodel.AO_MAX)
            if lo is not None:
                n.update(min_value=lo, max_value=hi, step=1)
            numbers.append(n)
        else:
            sensors.append(dict(base, register_type="read" if v["table"] == "input_registers" else "holding",
                                value_type=vt))
    for key, entries in (("binary_sensor", binary), ("switch", switches), ("sensor", sensors), ("number", numbers),
                         ("text_sensor", texts)):
        if entries:
            doc[key] = entries
    head = ["# ESPHome: %s (unit %d) on RS-485 at %d-8%s%d, made by mbnode %s from its register map."
            % (m["device_name"], m["unit_id"], r["baud"], r["parity"], r["stopbits"], m["mbnode"]),
            "# tx_pin and rx_pin are the ESPHome board's UART pins: set yours. Addresses are 0-based;",
            "# *_R value types read 32-bit values low word first, as mbnode keeps them."]
    if skipped:
        head.append("# Not exported (ESPHome has no byte-swapped 16-bit value type): " + ", ".join(skipped))
    return "\n".join(head + yaml(doc)) + "\n"


# --- Node-RED ---------------------------------------------------------------------------------


def read_pieces(m):
    """(table, first, quantity, what) for every read the flow makes: each present range in
    pieces the device answers in one request; memory in whole positions; the input table's view
    of memory and the status block's holding view left out (the same registers once)."""
    out = []
    for table, ranges in m["tables"].items():
        bits = table in ("coils", "discrete_inputs")
        most = pdu.MAX_BITS if bits else pdu.MAX_READ_REGS
        for r in ranges:
            if r.get("same_as") or (r["kind"] == "system_status" and table == "holding_registers"):
                continue
            step = most - most % 2 if r["kind"] == "memory" else most
            a = r["first"]
            while a <= r["last"]:
                n = min(step, r["last"] - a + 1)
                out.append((table, a, n, r["what"]))
                a += n
    return out


def node_red(m, rate=10, host=None, port=None, serial_port=None):
    cid = _slug(m["device_name"])
    tab = "%s.tab" % cid
    client = "%s.client" % cid
    t = m["transports"]
    serial = bool(serial_port) or not t["tcp"]["enabled"]
    h = host or t["tcp"]["host"]
    flow = [{"id": tab, "type": "tab", "label": "%s (mbnode)" % m["device_name"], "disabled": False,
             "info": "Made by mbnode %s from the register map. Addresses 0-based; 32-bit values lower half first."
                     % m["mbnode"]},
            {"id": client, "type": "modbus-client", "name": m["device_name"],
             "clienttype": "simpleser" if serial else "tcp", "bufferCommands": True, "stateLogEnabled": False,
             "tcpHost": "127.0.0.1" if h == "0.0.0.0" else h, "tcpPort": str(port or t["tcp"]["port"]),
             "tcpType": "DEFAULT", "serialPort": serial_port or "/dev/ttyUSB0", "serialType": "RTU",
             "serialBaudrate": str(t["rtu"]["baud"]), "serialDatabits": "8",
             "serialStopbits": str(t["rtu"]["stopbits"]),
             "serialParity": {"N": "none", "E": "even", "O": "odd"}[t["rtu"]["parity"]],
             "serialConnectionDelay": "100", "unit_id": m["unit_id"], "commandDelay": 1, "clientTimeout": 1000,
             "reconnectOnTimeout": True, "reconnectTimeout": 2000, "parallelUnitIdsAllowed": False}]
    kind = {"coils": "Coil", "discrete_inputs": "Input", "holding_registers": "HoldingRegister",
            "input_registers": "InputRegister"}
    y = 40
    for i, (table, first, n, what) in enumerate(read_pieces(m)):
        flow.append({"id": "%s.read%d" % (cid, i), "type": "modbus-read", "z": tab,
                     "name": "%s 0x%04X-0x%04X" % (table, first, first + n - 1), "topic": what,
                     "showStatusActivities": False, "showErrors": True, "unitid": str(m["unit_id"]),
                     "dataType": kind[table], "adr": str(first), "quantity": str(n), "rate": str(rate),
                     "rateUnit": "s", "delayOnStart": False, "startDelayTime": "", "server": client,
                     "useIOFile": False, "ioFile": "", "useIOForPayload": False, "emptyMsgOnFail": False,
                     "x": 200, "y": y, "wires": [[], []]})
        y += 40
    y = 40
    for i, v in enumerate(x for x in m["values"] if _writable(x)):
        if v["table"] == "coils":
            dt = "Coil"
        else:
            dt = "MHoldingRegisters" if v["count"] > 1 else "HoldingRegister"
        flow.append({"id": "%s.write%d" % (cid, i), "type": "modbus-write", "z": tab, "name": v["name"],
                     "showStatusActivities": False, "showErrors": True, "unitid": str(m["unit_id"]),
                     "dataType": dt, "adr": str(v["address"]), "quantity": str(v["count"]), "server": client,
                     "emptyMsgOnFail": False, "keepMsgProperties": False, "delayOnStart": False,
                     "startDelayTime": "", "x": 600, "y": y, "wires": [[], []]})
        y += 40
    return json.dumps(flow, indent=1) + "\n"


# --- CSV --------------------------------------------------------------------------------------

CSV_COLUMNS = ("name", "table", "address", "address_hex", "register_number", "count", "type", "word_order",
               "access", "protected", "read_fc", "write_fc", "position", "source", "what")


def to_csv(m):
    f = io.StringIO()
    w = csv.writer(f, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for v in m["values"]:
        read, write = _TABLE_FC[v["table"]]
        if not _writable(v):
            write = []
        elif v["table"] == "holding_registers" and v["count"] > 1:
            write = [16]
        w.writerow([v["name"], v["table"], v["address"], "0x%04X" % v["address"], v["address"] + 1, v["count"],
                    v["type"], v.get("word_order", ""), v["access"], v.get("protected", ""), read,
                    " ".join(str(c) for c in write), v.get("position", ""), v["source"], v["what"]])
    return f.getvalue()


def export(m, fmt, **kw):
    """The map `m` as text in format fmt (FORMATS)."""
    if fmt == "ha":
        return home_assistant(m, kw.get("interval", 10), kw.get("host"), kw.get("port"), kw.get("serial_port"))
    if fmt == "esphome":
        return esphome(m, kw.get("interval", 10))
    if fmt == "nodered":
        return node_red(m, kw.get("interval", 10), kw.get("host"), kw.get("port"), kw.get("serial_port"))
    if fmt == "csv":
        return to_csv(m)
    raise ValueError("format %r: allowed %s" % (fmt, ", ".join(FORMATS)))


def interval(text):
    """argparse type of --interval: whole seconds 1..86400."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 86400:
        raise argparse.ArgumentTypeError("%s: allowed whole seconds 1..86400" % text)
    return n


def run(args):
    """`mbnode export --format FORMAT [--config FILE] [--board NAME] ...`: the text on stdout."""
    from mbnode_host import regmap

    host = port = None
    if args.host:
        from mbnode_host.sim import parse_hostport

        if ":" in args.host:
            host, port = parse_hostport(args.host, "--host")
        else:
            host = args.host
    m = regmap.build(regmap.load(args.config, args.board), args.board, args.config)
    text = export(m, args.format, interval=args.interval, host=host, port=port, serial_port=args.serial)
    if args.out:
        try:
            with open(args.out, "w") as f:
                f.write(text)
        except OSError as e:
            raise OSError("cannot write --out %s: %s" % (args.out, e.strerror or e))
    else:
        print(text, end="")
    return 0
