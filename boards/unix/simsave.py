"""The simulator's ways into retained memory (docs/simulator.md), loaded only when used: the
control channel's `save` and `saved`, and the power-loss tests' hook MBNODE_STOP_AT."""

import os
import sys
import time


def command(op):
    """`save`: a save at the next quiet moment ("ok G": the generation that will hold every
    write so far); `saved`: "ok G WRITES", the last save complete and the flash writes."""
    r = sys.modules.get("mbnode.retain")
    if r is None or r.ACTIVE is None:
        return "err no retain section in the configuration"
    r = r.ACTIVE
    if op == "save":
        return "ok %d" % r.save_now()
    return "ok %d %d" % (r.saved, r.health.flash_writes)


def hold():
    """Every save stops at step MBNODE_STOP_AT (mbnode.store's step names) and waits there to be
    killed (SIGKILL), as a power cut would stop it. MBNODE_STOP_AT=log stops nowhere: each step
    prints its name and time.ticks_us() once its file work is done (on the unix port: the
    host's CLOCK_MONOTONIC in microseconds, modulo 2**30)."""
    from mbnode import store

    step = os.getenv("MBNODE_STOP_AT")

    def hook(name):
        if step == "log":
            print("mbnode: test hook: save step %s at %d" % (name, time.ticks_us()))
        elif name == step:
            print("mbnode: test hook: stopped at save step %s" % name)
            while True:
                time.sleep(1)

    store.hook = hook
