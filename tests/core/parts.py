"""The parts startup.build makes, for the scripts that need one (the TCP slave, the pin I/O)
without reaching into the loop's fields: made(module, name) swaps the class module.name for a
subclass that keeps every instance it makes, and returns that list. Call it before startup.build;
the firmware looks the class up in its module when it builds the part."""


def made(module, name):
    cls = getattr(module, name)
    instances = []

    init = getattr(cls, "__init__", None)  # None: a part whose fields its start() sets (MicroPython)

    class Kept(cls):
        def __init__(self, *args, **kwargs):
            if init is not None:
                init(self, *args, **kwargs)
            instances.append(self)

    setattr(module, name, Kept)
    return instances
