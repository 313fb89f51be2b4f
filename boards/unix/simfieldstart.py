"""Start-up only: the simulator's field side as mbnode.iobuild sets it up (board.field(),
docs/boards.md): the running Field (simfield.py) made, with the raw inputs of the channels the
io modes own, the inverted DO channels and the AO frequencies. Unloaded with the other start-up
modules once the parts are built (START_ONLY = True: mbnode.startup.forget), so these methods
take no RAM while the simulator serves.
"""

from mbnode.datamodel import DISCRETE_INPUTS, INPUT
from simfield import Field, SimInput

START_ONLY = True  # unloaded once the parts are built (mbnode.startup.forget)


def _input(level):
    """A channel's raw input (simfield.SimInput) at `level`, no handler, no pulse train."""
    i = SimInput()
    i.level = level
    i.handler = None
    i.trigger = 0
    i.train = None
    return i


class FieldSetup:
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, loop, model):
        f = self.field = Field()  # what the loop runs and the control channel reads
        f.model = model
        f.pins = {}
        f.adcs = {}
        f.inv = set()
        f.freqs = {}
        loop.add_timer(f)

    def pin(self, n):
        f = self.field
        p = f.pins[n] = _input(f.model.get_bit(DISCRETE_INPUTS, n))
        return p

    def adc(self, n, temp):
        f = self.field
        a = f.adcs[n] = _input(f.model.get_reg(INPUT, n))
        return a

    def own(self, table, n):
        pass  # the simulator mirrors nothing: an owned channel's raw input is pins[n] / adcs[n]

    def do_invert(self, n):
        self.field.inv.add(n)

    def ao_freq(self, n, hz):
        self.field.freqs[n] = hz
