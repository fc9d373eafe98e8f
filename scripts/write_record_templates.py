#!/usr/bin/env python3
"""Write simulator/record_templates.py: the ready-compiled ``__init__`` bodies records use.

    python scripts/write_record_templates.py           # rewrite the module
    python scripts/write_record_templates.py --check   # exit 1 if it is not what this writes

A record's ``__init__`` is one of these functions with its parameter (and, for the ``attrs``
and ``frozen`` kinds, attribute) names replaced by the fields' (``CodeType.replace``): the
bytecode comes from the module's ``.pyc``, so no record compiles anything when its class is
made (simulator/records.py says why). One function per kind and field count, up to
``FIELDS_MAX`` fields; a record with more fields takes the compiled path.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(os.path.dirname(HERE), "simulator", "record_templates.py")

#: the most fields a template takes (the widest record on the simulate path has 21)
FIELDS_MAX = 24

HEADER = '''\
"""Ready-compiled ``__init__`` bodies for records, one per kind and field count.

Written by scripts/write_record_templates.py; do not edit (tests/test_record_inits.py checks
that it is what the script writes). ``simulator/records.py`` copies one with its names
replaced (``CodeType.replace``): ``self`` and ``a<i>`` are the parameters, ``f<i>`` the
field names (attributes of ``attrs<n>``, constants of ``frozen<n>``), and ``s<i>`` and
``put`` are looked up in the globals the record gives the copy:

- ``slots<n>``: a frozen slotted record; ``s<i>`` is field i's slot ``__set__`` (what
  ``object.__setattr__`` ends in, at 60% of its cost);
- ``frozen<n>``: a frozen record with a ``__dict__``; ``put`` is ``object.__setattr__``
  (a store into ``self.__dict__`` would be cheaper here but leaves the object without its
  inline attribute values, so every later read of a field is slower: more in a run);
- ``attrs<n>``: a mutable record, slotted or not (plain attribute stores).
"""
# ruff: noqa: E501, E702, F821
# mypy: ignore-errors
'''


def source(fields_max: int = FIELDS_MAX) -> str:
    lines = [HEADER, f"FIELDS_MAX = {fields_max}", ""]
    for n in range(fields_max + 1):
        params = "".join(f", a{i}" for i in range(n))
        bodies = {
            "slots": [f"s{i}(self, a{i})" for i in range(n)],
            "frozen": [f"put(self, 'f{i}', a{i})" for i in range(n)],
            "attrs": [f"self.f{i} = a{i}" for i in range(n)],
        }
        for kind, body in bodies.items():
            lines.append(f"def {kind}{n}(self{params}): " + ("; ".join(body) or "pass"))
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="only check that the module is what this script writes")
    args = ap.parse_args()
    text = source()
    if args.check:
        with open(TARGET) as f:
            if f.read() != text:
                print(f"{TARGET} is not what {sys.argv[0]} writes: run it", file=sys.stderr)
                return 1
        return 0
    with open(TARGET, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
