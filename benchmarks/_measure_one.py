"""Run one collsim command in this process and print its peak memory (KiB) on the last line.

Used by run_benchmarks.py so that the wall time includes Python's start-up and imports, as a
user's would, and the peak resident memory is this process's own.
"""
import resource
import sys

from simulator.cli import main

code = main(sys.argv[1:])
print(f"maxrss_kib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
sys.exit(code)
