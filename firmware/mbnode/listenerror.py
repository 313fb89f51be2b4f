"""The exit of a start-up whose listening socket could not be had (TCP slave, the simulator's
control channel): one line on stderr and exit status 1, as when the RTU port cannot be opened
(rtu.py). A module of its own, imported only then, so a running device spends no RAM on it."""

import sys

# Why, by errno (the unix port's numbers, which MicroPython uses on every port).
_WHY = {
    13: "permission denied (ports below 1024 need root)",
    98: "the address is in use (another program listens there)",
    99: "the address is not one of this machine's",
}


def cannot_listen(what, host, port, e):
    code = e.args[0] if e.args else None
    print("%s: cannot listen on %s:%d: %s" % (what, host, port, _WHY.get(code) or e), file=sys.stderr)
    sys.exit(1)
