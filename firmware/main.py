# mbnode entry point: on a board main.py runs at boot with /config.json; the simulator passes
# the configuration path as its first argument.
import sys

from mbnode import app

app.run(sys.argv[1] if len(getattr(sys, "argv", ())) > 1 else "config.json")
