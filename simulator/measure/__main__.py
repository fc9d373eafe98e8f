"""``python -m simulator.measure`` (or ``python -m measure`` from a copy of this folder alone):
the same as ``collsim measure``."""
import sys

from .cli import main

sys.exit(main())
