"""Why mbnode.datatypes.check refused a value: the ValueError "value V: allowed A", A saying what
the value's type takes. Loaded for each refusal and dropped again (datatypes._refused), so none
of these texts stays on the heap while every value is right."""

import json

from mbnode.datatypes import limits


def refusal(obj, value):
    """The ValueError for `value`, refused by check() for obj's type."""
    t = obj.type
    if t == "bool":
        allowed = "true, false, 0 or 1"
    elif t == "ascii":
        allowed = "text of at most %d printable ASCII characters" % (2 * obj.width)
    elif t == "hex":
        allowed = "text of %d hexadecimal digits" % (4 * obj.width)
    elif obj.fmt[1] in "fd":
        allowed = "a finite number" + (" within +-3.4028235e38" if obj.fmt[1] == "f" else "")
    else:
        lo, hi = limits(obj)
        allowed = "an integer %d..%d" % (lo, hi) + (" (or its decimal text)" if obj.fmt[1] in "qQ" else "")
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return ValueError("value %s: allowed %s" % (shown, allowed))
