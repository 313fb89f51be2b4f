"""`mbnode devices`: the serial ports of this machine (pyserial's list_ports), with USB ids, and
which of them are MicroPython boards (docs/cli.md, "mbnode devices").

A USB id says what is on the far end only so far: MicroPython's own firmware reports its own
ids (`yes`), a chip's built-in USB says which chip but not what it runs (`likely` for the
Espressif chips MicroPython is usually flashed onto through it), and a USB-UART bridge is on
ESP32 development boards and RS-485 adapters alike (`maybe`).
"""

import sys

from mbnode_host import clitools

# (vid, pid) -> (micropython, what it is, mbnode boards it may be). From MicroPython 1.25's
# ports (MICROPY_HW_USB_VID/PID: rp2 2E8A:0005; stm32, samd, mimxrt, nrf, renesas-ra F055:980x;
# esp32 with native USB through TinyUSB 303A:4001) and the chips' own USB devices.
KNOWN = {
    (0x2E8A, 0x0005): ("yes", "MicroPython on an RP2040/RP2350 (Raspberry Pi Pico)", ("pico", "pico-w")),
    (0xF055, 0x9800): ("yes", "MicroPython (USB serial + storage)", ()),
    (0xF055, 0x9801): ("yes", "MicroPython (USB serial + HID)", ()),
    (0xF055, 0x9802): ("yes", "MicroPython (USB serial)", ()),
    (0x303A, 0x4001): ("yes", "MicroPython on an ESP32-S2/S3 (native USB)", ("esp32-s3",)),
    (0x303A, 0x1001): ("likely", "Espressif USB JTAG/serial (ESP32-C3/-C6/-S3 built-in)", ("esp32-c3", "esp32-s3")),
    (0x10C4, 0xEA60): ("maybe", "Silicon Labs CP210x USB-UART bridge (ESP32 boards, RS-485 adapters)", ("esp32",)),
    (0x1A86, 0x7523): ("maybe", "WCH CH340 USB-UART bridge (ESP32 boards, RS-485 adapters)", ("esp32",)),
    (0x1A86, 0x55D4): ("maybe", "WCH CH9102 USB-UART bridge (ESP32 boards)", ("esp32",)),
    (0x0403, 0x6001): ("maybe", "FTDI FT232R USB-UART bridge (RS-485 adapters)", ()),
    (0x0403, 0x6015): ("maybe", "FTDI FT231X USB-UART bridge (RS-485 adapters)", ()),
}
ORDER = {"yes": 0, "likely": 1, "maybe": 2, "no": 3}


def comports():
    """pyserial's list (a function of its own so that tests can replace it)."""
    from serial.tools import list_ports

    return list_ports.comports()


def _text(value):
    return None if value in (None, "", "n/a") else str(value)


def describe(port):
    """One port (a pyserial ListPortInfo) as a dict: the JSON record of `mbnode devices --json`."""
    vid, pid = port.vid, port.pid
    usb = isinstance(vid, int) and isinstance(pid, int)
    micropython, what, boards = KNOWN.get((vid, pid), ("no", None, ())) if usb else ("no", None, ())
    return {"device": port.device,
            "usb": "%04x:%04x" % (vid, pid) if usb else None,
            "serial_number": _text(port.serial_number),
            "manufacturer": _text(port.manufacturer),
            "product": _text(port.product),
            "description": _text(port.description),
            "micropython": micropython,
            "known_as": what,
            "boards": list(boards)}


def listing(ports=None):
    """Every port, MicroPython boards first, then by device path."""
    found = [describe(p) for p in (comports() if ports is None else ports)]
    return sorted(found, key=lambda d: (ORDER[d["micropython"]], d["device"]))


def table(records):
    """The text form: one line per port."""
    rows = [("DEVICE", "USB", "SERIAL", "MICROPYTHON", "DESCRIPTION")]
    for d in records:
        desc = d["known_as"] or d["description"] or d["product"] or ""
        if d["boards"]:
            desc += " (--board %s)" % "|".join(d["boards"])
        rows.append((d["device"], d["usb"] or "-", d["serial_number"] or "-", d["micropython"], desc))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "".join("%-*s  %-*s  %-*s  %-*s  %s\n" % (widths[0], r[0], widths[1], r[1], widths[2], r[2],
                                                    widths[3], r[3], r[4]) for r in rows)


def run(args):
    records = listing()
    if args.micropython:
        records = [d for d in records if d["micropython"] != "no"]
    if args.json:
        clitools.print_json(records)
    elif records:
        print(table(records), end="")
    else:
        print("mbnode devices: no %sserial ports" % ("MicroPython " if args.micropython else ""), file=sys.stderr)
    return clitools.OK
