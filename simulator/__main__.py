import sys

try:
    from .cli import main

    code = main()
except KeyboardInterrupt:  # Ctrl-C while Python is still importing: no traceback
    print("collsim: interrupted", file=sys.stderr)
    code = 130
raise SystemExit(code)
