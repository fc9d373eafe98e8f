"""Run ``collsim`` in this process and capture what it prints (for tests of outputs)."""
from __future__ import annotations

import contextlib
import io
import warnings

from simulator.cli import main as cli_main


def run_cli(args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``collsim ARGS``; warnings are silenced (the tests
    that use this check files and exit codes, not what was warned)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli_main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()
