"""What an MCU board module offers the firmware when its I/O is plain pins, its network (if any)
Wi-Fi and its RTU line a UART with an RS-485 transceiver: start, describe, open_rtu, addresses
and config_rules (docs/boards.md). boards/<name>/board.py makes one PinBoard and names its chip.

Nothing here touches `machine` or `network` at import: the host tools import board modules on
CPython to read their facts (mbnode build).
"""


class PinBoard:
    def __init__(self, name, chip, wifi):
        """name: the board's name; chip: its pin facts' name (chip_<chip>.py); wifi: whether it
        has a Wi-Fi radio."""
        self.name = name
        self.chip = chip
        self.has_wifi = wifi
        self.wifi = None  # the WifiJoin, when board.wifi_ssid is set
        self.ips = []  # this board's IP addresses, kept up to date in place
        self.pinio = None  # the PinIO, once started: the io modes' field side

    def board_api(self):
        """What a board module exports, in this order: config_rules, start, describe, open_rtu,
        addresses, field (docs/boards.md)."""
        return self.config_rules, self.start, self.describe, self.open_rtu, self.addresses, self.field

    def config_rules(self):
        """(schema, defaults, check) for mbnode.config: start-up only (pinrules.py)."""
        import pinrules

        return pinrules.rules(self)

    def start(self, loop, model, cfg):
        """The pin map mirrored into the data model; Wi-Fi joining in the background."""
        if cfg["pins"]:
            from pinio import PinIO

            try:
                self.pinio = PinIO(model, cfg["do_pins"], cfg["di_pins"], cfg["ai_pins"], cfg["ao_pins"],
                                   scan_ms=cfg["scan_ms"])
                loop.add_timer(self.pinio)
            except (ValueError, OSError) as e:  # a pin this firmware build lacks (e.g. PSRAM's)
                print("board: pins not driven: %s; serving without them" % e)
        if self.has_wifi and cfg["wifi_ssid"]:
            from wifi import WifiJoin

            self.wifi = WifiJoin(loop, cfg["wifi_ssid"], cfg["wifi_password"], cfg["wifi_timeout"], self.ips)

    def field(self):
        """The field side of the io section's modes (mbnode/iomodes.py): the PinIO, or None."""
        return self.pinio

    def open_rtu(self, rtu, cfg, key="rtu"):
        """The RS-485 port of serial line `key` ("rtu", "rtu2"): board.<key>_uart and pins."""
        from rs485 import UartPort

        return UartPort(cfg[key + "_uart"], cfg[key + "_tx"], cfg[key + "_rx"], cfg[key + "_de"],
                        cfg[key + "_de_invert"], rtu["baud"], rtu["parity"], rtu["stopbits"])

    def describe(self):
        words = ["board " + self.name]
        if self.wifi is not None:
            words.append("ip " + self.ips[0] if self.ips else "wifi connecting")
        return words

    def addresses(self):
        """This board's own IP addresses (a gateway request to one of them stays local): the
        list itself, updated in place when Wi-Fi comes and goes."""
        return self.ips
