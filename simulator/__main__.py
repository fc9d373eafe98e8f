import sys

try:
    from .cli import program

    code = program()
except KeyboardInterrupt:  # Ctrl-C while Python is still importing: no traceback
    print("collsim: interrupted", file=sys.stderr)
    code = 130
raise SystemExit(code)
