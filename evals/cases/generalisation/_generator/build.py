"""Rewrite every generalisation case folder from cases_*.py (see lib.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases_a
import cases_b
import cases_c
import cases_d

MODULES = (cases_a, cases_b, cases_c, cases_d)

if __name__ == "__main__":
    builders = [getattr(m, n) for m in MODULES for n in sorted(dir(m))
                if n.startswith("c") and n[1:].isdigit()]
    for build in builders:
        case = build()
        case.write()
        print("wrote", case.name)
