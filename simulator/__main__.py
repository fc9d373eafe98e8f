import sys

try:
    from .cli import main

    code = main()
    if sys.argv[1:2] == ["simulate"]:
        from .cli import exit_now
        exit_now(code)
except KeyboardInterrupt:  # Ctrl-C while Python is still importing: no traceback
    print("collsim: interrupted", file=sys.stderr)
    code = 130
raise SystemExit(code)
