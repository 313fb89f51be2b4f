# mbnode entry point: on a board main.py runs at boot with /config.json; the simulator passes
# the configuration path as its first argument.
import sys

try:
    from mbnode import app

    app.run(sys.argv[1] if len(getattr(sys, "argv", ())) > 1 else "config.json")
except KeyboardInterrupt:  # while starting: stopped before it served
    pass
except MemoryError:
    # The heap is too small to start (`mbnode sim` measures the smallest that starts). On the
    # unix port that is exit status 3; a board stays at its REPL.
    print("mbnode: out of memory while starting", file=sys.stderr)
    if sys.platform == "linux":
        sys.exit(3)
