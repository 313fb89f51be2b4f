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
        self.adc = None  # the RP2040's temperature sensor, once read (temperature())
        self.pinio = None  # the PinIO, once started: the io modes' field side

    def board_api(self):
        """What a board module exports, in this order: config_rules, start, describe, open_rtu,
        addresses, watch, field (docs/boards.md)."""
        return self.config_rules, self.start, self.describe, self.open_rtu, self.addresses, self.watch, self.field

    def config_rules(self):
        """(schema, defaults, check) for mbnode.config: start-up only (pinrules.py)."""
        import pinrules

        return pinrules.rules(self)

    def start(self, loop, model, cfg):
        """The pin map mirrored into the data model; Wi-Fi joining in the background."""
        self.cfg = cfg  # the board section, for watch()
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

    def watch(self, loop, engine, health):
        """The watchdog (board.wdt_ms) and the status LED (board.led_pin) on the loop, once the
        engine and the health figures exist; returns the words for the ready line (the watchdog's
        timeout and start delay, when it is on)."""
        cfg = self.cfg
        words = []
        if cfg["led_pin"] >= 0:
            from statusled import StatusLed

            loop.add_timer(StatusLed(cfg["led_pin"], engine, health))
        if cfg["wdt_ms"]:
            from watchdog import Watchdog

            loop.add_timer(Watchdog(cfg["wdt_ms"], cfg["wdt_delay_s"]))
            words += ["wdt", "%dms-after-%ds" % (cfg["wdt_ms"], cfg["wdt_delay_s"])]
        return words

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

    def system_api(self):
        """What the status and settings registers (mbnode.sysregs) ask of a board: reboot,
        temperature, mac."""
        return self.reboot, self.temperature, self.mac

    def reboot(self):
        """The settings block's reboot command (1 s after its reply was made)."""
        import machine

        machine.reset()

    def temperature(self):
        """The chip's temperature in 0.1 degC, or None where it has no sensor the port reads
        (the ESP32's raw_temperature is uncalibrated: not used). Called once a second by the
        status block's timer, never on a request: it allocates (floats, the ADC object once)."""
        if self.chip == "rp2040":
            if self.adc is None:
                from machine import ADC

                self.adc = ADC(4)  # the temperature sensor (RP2040 datasheet 4.9.5)
            volts = self.adc.read_u16() * 3.3 / 65535
            return int(round(10 * (27 - (volts - 0.706) / 0.001721)))
        try:
            import esp32

            return int(round(10 * esp32.mcu_temperature()))  # ESP32-S2/S3/C3 (IDF 5)
        except (ImportError, AttributeError, OSError, RuntimeError):
            return None

    def mac(self):
        """The Wi-Fi station's MAC address as "AA:BB:CC:DD:EE:FF", "" without a radio."""
        if not self.has_wifi:
            return ""
        try:
            import network

            m = network.WLAN(network.STA_IF).config("mac")
        except Exception:  # noqa: BLE001 - a radio that does not answer yet: no MAC shown
            return ""
        return ":".join("%02X" % b for b in m)

    def addresses(self):
        """This board's own IP addresses (a gateway request to one of them stays local): the
        list itself, updated in place when Wi-Fi comes and goes."""
        return self.ips
