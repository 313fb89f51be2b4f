"""The firmware's entry: mbnode.startup builds the parts (configuration -> board -> data model ->
engine -> transports -> event loop) and is unloaded again; run() serves."""

import sys


def run(config_path="config.json"):
    try:
        from mbnode import startup

        loop, ready = startup.start(config_path)
        startup.forget()
        del startup
        print(ready)
        del ready  # not kept for as long as the loop runs
        loop.run()
    except KeyboardInterrupt:  # SIGINT (mbnode sim turns SIGTERM into one): the normal way out
        r = sys.modules.get("mbnode.retain")
        if r and r.ACTIVE:
            r.ACTIVE.flush()  # retained memory's changes since its last save
    except MemoryError:
        # The heap is too small to start (`mbnode sim` then measures the smallest that does).
        # The simulator's board (KEEP_SERVING false) exits with status 3; a board stays at its REPL.
        print("mbnode: out of memory while starting", file=sys.stderr)
        if not getattr(sys.modules.get("board"), "KEEP_SERVING", True):
            sys.exit(3)
