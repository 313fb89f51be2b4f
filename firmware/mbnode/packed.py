"""Start-up only: the checked configuration copied once the check's modules and garbage are gone
(app.run loads this module for that and unloads it again).

The copy lies together low in the heap, where the check's garbage was, instead of scattered among
the check's holes: 64 MQTT points left 64 objects a few hundred bytes apart, the largest free
block after the check was 4 to 6 KiB, and with them as .mpy the smallest heap that started was
146 KiB (32-bit unix port); with the copy, 129 KiB. The old copy is collected once the stack no
longer holds it: the heap in use after start is the same."""


def copy(v):
    """v with every dict and list copied (other values are shared)."""
    if type(v) is dict:
        return {k: copy(x) for k, x in v.items()}
    if type(v) is list:
        return [copy(x) for x in v]
    return v
