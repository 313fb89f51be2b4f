"""The pin rule cases (pin_rule_cases.py) of one board, validated by the firmware's own config
code on the unix port. Run with MICROPYPATH=tests/fakes:tests/core:boards/<board>:boards/common:
firmware; prints one line per case: "ID<TAB>OK" or "ID<TAB>message"."""

import board
from mbnode import config
from pin_rule_cases import CASES

rules = board.config_rules()
for case, _, name, given, _ in CASES:
    if name != board.NAME:
        continue
    try:
        config.validate(given, *rules)
        print("%s\tOK" % case)
    except config.ConfigError as e:
        print("%s\t%s" % (case, e))
