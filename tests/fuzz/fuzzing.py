"""Shared set-up of the property-based fuzzing (hypothesis) of tests/fuzz.

Two profiles: "ci" (the default: a bounded pass, FUZZ_CI_EXAMPLES = 400 inputs per property,
that `make test-unix` runs in well under a minute) and "fuzz" (`make fuzz`: FUZZ_EXAMPLES inputs
per target, default 100,000; a target is one test_fuzz_*.py file, and its properties share the
inputs equally, see per_target). Examples are never slow-checked (no deadline): the machine may
be busy, and time is not what is tested.
"""

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile("ci", max_examples=int(os.environ.get("FUZZ_CI_EXAMPLES", "400")), deadline=None,
                          derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100000")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = os.environ.get("MBNODE_FUZZ_PROFILE", "ci")
settings.load_profile(PROFILE)


def per_target(properties):
    """The decorator for each of a target's `properties` properties: under the "fuzz" profile
    they share FUZZ_EXAMPLES inputs equally; under "ci" each runs the profile's count."""
    if PROFILE != "fuzz":
        return lambda test: test
    return settings(max_examples=max(1, int(os.environ.get("FUZZ_EXAMPLES", "100000")) // properties))

# Addresses where the map changes: its edges, and a few beyond.
EDGES = [0, 1, 0x3E, 0x3F, 0x40, 0x41, 0x13E, 0x13F, 0x140, 0x23E, 0x23F, 0x240, 0x241, 0xFFF, 0x1000, 0x1001,
         0x17FE, 0x17FF, 0x1800, 0xFFFE, 0xFFFF]


def u16():
    """A 16-bit field: mostly near the map's edges and small quantities, sometimes anything."""
    return st.one_of(st.sampled_from(EDGES), st.integers(0, 0x10), st.integers(0x78, 0x80),
                     st.integers(0x23C, 0x244), st.integers(0x7AE, 0x7B2), st.integers(0, 0xFFFF))
