"""Start-up only: the io modes' objects (mbnode/iomodes.py) from the checked "io" section, the
pin interrupts registered and the power-on values written; start() unloads the module again once
they are built (its code and texts take no RAM while the device serves)."""

import time

from mbnode.datamodel import DISCRETE_INPUTS, HOLDING, INPUT, MEM_BASE
from mbnode.iomodes import _DI, IoModes

MODES = ("level", "counter", "latch", "frequency")


class _Fields:
    """An AI channel or a DO channel in pulse mode: plain fields (ai(), build()); one class for
    both, as a class costs RAM of its own. Defined here, it stays loaded only while such a
    channel does (iomodes reads the fields)."""


def start(loop, engine, model, io, board):
    """The io section's modes on the board's field side; the ready line's words."""
    import sys

    import mbnode

    del sys.modules["mbnode.iobuild"]
    delattr(mbnode, "iobuild")
    field = board.field() if hasattr(board, "field") else None
    if field is None:
        print("io: the board has no pin map (board.pins false); the io section is not applied")
        return []
    build(IoModes(), loop, engine, model, io, field)
    return ["io_modes %d" % (len(io["di"]) + len(io["ai"]) + len(io["do"]) + len(io["ao"]))]


def di(e, pin, model):
    """The channel's _DI: only the fields its mode and debounce use (the others: the class's)."""
    c = _DI()
    c.n = e["channel"]
    p = e["position"]
    c.off = model.reg_offset(HOLDING, MEM_BASE + 2 * (p - 1)) if p else -1  # the position's offset in model.regs
    c.pin = pin
    c.mode = MODES.index(e["mode"])
    c.inv = 1 if e["invert"] else 0
    c.edges = 0  # written by the interrupt handler only
    c.t = time.ticks_ms()  # of the last edge (interrupt handler)
    c.seen = 0  # edges already taken into account
    if e["debounce_ms"]:
        c.deb = e["debounce_ms"]
        c.stable = pin.value() ^ c.inv  # the debounced level
        c.active = 1 if e["edge"] == "rising" else 0  # the logical level an edge counted goes to
    if e["mode"] == "frequency":
        c.gate = e["gate_ms"]
        c.acc = 0  # edges in this gate
        c.g = c.t  # when this gate began
    return c


def ai(e, adc, model):
    a = _Fields()  # an AI channel
    a.adc = adc
    a.off = model.reg_offset(INPUT, e["channel"])
    a.period = e["period_ms"]
    a.ring = [0] * e["average"]  # the last readings
    a.i = 0
    a.filled = 0
    a.sum = 0
    a.next = time.ticks_ms()
    a.rl = e["raw_low"]
    a.den = e["raw_high"] - e["raw_low"]
    a.low = e["low"]
    a.span = e["high"] - e["low"]
    return a


def build(m, loop, engine, model, io, field):
    m.engine = engine
    m.model = model
    m.regs = model.regs
    m.scan = io["scan_ms"]
    m.next = time.ticks_ms()
    digital = []
    for e in io["di"]:
        n = e["channel"]
        c = di(e, field.pin(n), model)
        field.own(DISCRETE_INPUTS, n)
        if c.mode or c.deb:
            # Debounced: every edge restarts the debounce time; else only the edge that counts.
            if c.deb:
                trigger = field.IRQ_RISING | field.IRQ_FALLING
            else:
                trigger = field.IRQ_RISING if (e["edge"] == "rising") ^ c.inv else field.IRQ_FALLING
            try:
                c.pin.irq(handler=c.edge, trigger=trigger, hard=True)  # rp2: in the interrupt itself
            except TypeError:  # esp32's Pin.irq has no hard=: the handler is scheduled
                c.pin.irq(handler=c.edge, trigger=trigger)
        model.set_bit(DISCRETE_INPUTS, n, c.stable if c.deb else c.pin.value() ^ c.inv)
        digital.append(c)
    m.di = tuple(digital)  # tuples: they never change, and an empty one takes no RAM
    analog = []
    for e in io["ai"]:
        n = e["channel"]
        field.own(INPUT, n)
        analog.append(ai(e, field.adc(n, e["source"] == "temp"), model))
    m.ai = tuple(analog)
    pulses = []
    for e in io["do"]:
        if e["invert"]:
            field.do_invert(e["channel"])
        if e["pulse_ms"]:
            p = _Fields()  # a DO channel in pulse mode
            p.n = e["channel"]
            p.ms = e["pulse_ms"]
            p.on = False
            p.end = 0
            pulses.append(p)
    m.pulses = tuple(pulses)
    for e in io["ao"]:
        field.ao_freq(e["channel"], e["freq"])
    if m.di or m.pulses:
        model.subscribe(m.written)
    # Power-on values, written as the device's own part: every output subscriber (the pins)
    # hears them, before any transport serves. The request buffers stay for the pulses' ends only.
    m.req = bytearray(6)  # IoModes._write's request and answer
    m.resp = bytearray(8)
    for e in io["do"]:
        m._write(5, e["channel"], 0xFF00 if e["power_on"] else 0)
    for e in io["ao"]:
        m._write(6, e["channel"], e["power_on"])
    if not m.pulses:
        m.req = m.resp = None  # (del would keep them: a member table keeps a deleted value)
    m.tick(time.ticks_ms())
    if hasattr(field, "scan_ms") and field.scan_ms == m.scan:
        # The board's input scan (PinIO) due when the modes' is: one wake of the loop serves both
        # (on the RP2040 each wake costs about as much as the scans themselves).
        field.next = m.next
    loop.add_timer(m)
