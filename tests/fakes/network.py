"""Stand-in for network.WLAN on the unix port: connects at once to any SSID."""

STA_IF = 0
joined = []


class WLAN:
    def __init__(self, iface):
        self.up = False

    def active(self, on):
        pass

    def isconnected(self):
        return self.up

    def connect(self, ssid, password):
        joined.append((ssid, password))
        self.up = True

    def ifconfig(self):
        return ("10.0.0.5", "255.255.255.0", "10.0.0.1", "10.0.0.1")
