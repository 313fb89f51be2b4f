"""The simulator's control requests that read or set I/O (docs/simulator.md): get, set, field,
pulse, and save/saved (simsave.py), and the refusal of a request too long or not ASCII.
board.execute answers `heap` itself and hands every other request here; this module is loaded on the first one and stays (a simulator nobody sends such a
request spends no RAM on it). Not the Modbus hot path: a request may allocate.
"""

import time

from mbnode import memory32
from mbnode.datamodel import (
    BIT_CHANNELS,
    COILS,
    DISCRETE_INPUTS,
    HOLDING,
    INPUT,
    MEM_POSITIONS,
    REG_CHANNELS,
)

# table name -> (kind, table, number of addresses)
_TABLES = {
    "do": ("bit", COILS, BIT_CHANNELS),
    "di": ("bit", DISCRETE_INPUTS, BIT_CHANNELS),
    "ao": ("reg", HOLDING, REG_CHANNELS),
    "ai": ("reg", INPUT, REG_CHANNELS),
    "mem": ("mem", None, MEM_POSITIONS),
}


def execute(model, line, f):
    """One request (bytes; not `heap`; None: longer than 1024 characters) -> reply text. f: the
    io section's field side (simfield.Field), or None."""
    if line is None:
        return "err request longer than 1024 characters"
    try:
        words = line.decode().split()
    except UnicodeError:
        return "err requests are ASCII text"
    try:
        if words == ["save"] or words == ["saved"]:
            from simsave import command

            return command(words[0])
        op = words[0] if words else ""
        if f and op in ("field", "pulse"):
            return _field_side(f, words)
        if not (op == "get" and 3 <= len(words) <= 4 or op == "set" and len(words) > 3) or words[1] not in _TABLES:
            raise ValueError("allowed: get TABLE ADDR [COUNT] | set TABLE ADDR V1 [V2 ...] | heap | save | saved; "
                             "TABLE: do di ao ai mem")
        kind, table, size = _TABLES[words[1]]
        try:
            numbers = [int(w, 0) for w in words[2:]]
        except ValueError:
            raise ValueError("allowed decimal or 0x hex integers after the table: " + " ".join(words[2:]))
        first = numbers[0]
        if op == "get":
            count = numbers[1] if len(numbers) > 1 else 1
            if count < 1:
                raise ValueError("COUNT %d: allowed 1 or more" % count)
            values = None
        else:
            values = numbers[1:]
            count = len(values)
        low = 1 if kind == "mem" else 0
        if first < low or first + count - 1 > size - 1 + low:
            raise ValueError("addresses %d..%d outside %s %d..%d"
                             % (first, first + count - 1, words[1], low, size - 1 + low))
        out = []
        for i in range(count):
            a = first + i
            if values is not None and f and _set_input(f, table, a, values[i]):
                pass  # the raw input of a channel the io modes own
            elif kind == "bit":
                if values is None:
                    out.append(model.get_bit(table, a))
                elif values[i] in (0, 1):
                    model.set_bit(table, a, values[i])
                else:
                    raise ValueError("bit value %d: allowed 0 or 1" % values[i])
            elif kind == "reg":
                if values is None:
                    out.append(model.get_reg(table, a))
                elif 0 <= values[i] <= 0xFFFF:
                    model.set_reg(table, a, values[i])
                else:
                    raise ValueError("register value %d: allowed 0..65535" % values[i])
            elif values is None:
                out.append(memory32.get_u32(model, a))
            else:
                memory32.set_u32(model, a, values[i])
        if values is not None and table != DISCRETE_INPUTS and table != INPUT:
            # Outputs and memory set here reach the output subscribers as a master's write does.
            if kind == "mem":
                table, first, count = HOLDING, memory32.mem_register(first), 2 * count
            if not model.outputs_written(table, first, count):
                return "err the values are set, but an output subscriber failed (the simulator printed why)"
        return " ".join(["ok"] + [str(v) for v in out])
    except ValueError as e:
        return "err %s" % e


def _field_side(f, words):
    """`field TABLE ADDR [COUNT]` or `pulse di ADDR COUNT HIGH_MS [LOW_MS]` -> reply text;
    ValueError says what is allowed."""
    tables = {"do": COILS, "di": DISCRETE_INPUTS, "ao": HOLDING, "ai": INPUT}
    if words[0] == "pulse" and len(words) in (5, 6) and words[1] == "di":
        n = [int(w, 0) for w in words[2:]]
        if min(n) < 0 or n[1] < 1:
            raise ValueError("allowed ADDR, COUNT >= 1, HIGH_MS and LOW_MS >= 0")
        _pulse(f, n[0], n[1], n[2], n[-1])
        return "ok"
    if words[0] != "field" or len(words) not in (3, 4) or words[1] not in tables:
        raise ValueError("allowed: field TABLE ADDR [COUNT] (TABLE: do di ao ai) | pulse di ADDR COUNT HIGH_MS "
                         "[LOW_MS]")
    n = [int(w, 0) for w in words[2:]] + [1]
    size = BIT_CHANNELS if words[1] in ("do", "di") else REG_CHANNELS
    if n[0] < 0 or n[1] < 1 or n[0] + n[1] > size:
        raise ValueError("addresses %d..%d outside %s 0..%d" % (n[0], n[0] + n[1] - 1, words[1], size - 1))
    return " ".join(["ok"] + [str(_field(f, tables[words[1]], a)) for a in range(n[0], n[0] + n[1])])


def _set_input(f, table, n, v):
    """`set di` / `set ai` of a channel the io modes own: its raw input on the field side f.
    False: not owned (or a value the table does not take: the caller's own check refuses it)."""
    if table == DISCRETE_INPUTS and n in f.pins and v in (0, 1):
        p = f.pins[n]
        p.train = None
        p.set(v)
        return True
    if table == INPUT and n in f.adcs and 0 <= v <= 0xFFFF:
        f.adcs[n].level = v
        return True
    return False


def _field(f, table, n):
    """`field TABLE ADDR`: what the field side f has at channel n."""
    model = f.model
    if table == DISCRETE_INPUTS:
        return f.pins[n].level if n in f.pins else model.get_bit(table, n)
    if table == INPUT:
        return f.adcs[n].level if n in f.adcs else model.get_reg(table, n)
    if table == COILS:
        return model.get_bit(COILS, n) ^ (1 if n in f.inv else 0)
    return f.freqs.get(n, 0)


def _pulse(f, n, count, high, low):
    """`pulse di ADDR COUNT HIGH_MS [LOW_MS]`: COUNT pulses away from the raw level now (the
    field's loop timer plays the train)."""
    p = f.pins.get(n)
    if p is None:
        raise ValueError("di %d has no io mode: allowed a channel of io.di" % n)
    p.train = [2 * count, high, low, time.ticks_ms()]
