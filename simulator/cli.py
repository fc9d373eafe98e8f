"""The ``collsim`` command line: wires readers, engine and reporters together, nothing more.

Subcommands live in ``simulator/commands/<name>.py``, each with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``, and are imported only when used so that
``collsim --help`` stays instant. Bad input ends with one line on stderr and exit code 2.
"""
from __future__ import annotations

import gc
import importlib
import sys
import warnings

from . import __version__

#: subcommand -> one-line help; the module is simulator.commands.<name>
COMMANDS = {
    "simulate": "replay a workload table on a cluster: iteration time, breakdown, timeline",
    "bench": "simulated nccl-tests: one collective over a range of sizes on a topology",
    "generate": "write a workload table from a model and a parallel configuration",
    "sweep": "run many what-if configurations in parallel and tabulate/plot them",
    "calibrate": "fit the communication model to measured timings",
    "measure": "measure collectives and GEMMs on real GPUs (needs torch)",
    "validate": "compare predictions with bundled real measurements",
}


def _has_command(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(f"simulator.commands.{name}") is not None


def _command_module(name: str):
    """``simulator.commands.NAME``, or None when there is no such module (an error inside
    one that exists propagates, as its import would)."""
    try:
        return importlib.import_module(f"simulator.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"simulator.commands.{name}":
            raise
        return None


def _available() -> dict[str, str]:
    return {name: text for name, text in COMMANDS.items() if _has_command(name)}


def _format_warning(message, category, filename, lineno, line=None) -> str:
    from .report.escape import for_terminal
    return f"warning: {for_terminal(' '.join(str(message).splitlines()))}\n"


def main(argv: list[str] | None = None) -> int:
    program = argv is None
    if program:
        # a process of its own: no garbage collections while the modules load (they free
        # nothing: modules live to the end), then those objects are frozen out of every
        # later collection, the one at exit included (6% of a plain simulate run's
        # instructions); a caller's own process (main([...])) keeps its collector as it is
        gc.disable()
    try:
        return _main(list(sys.argv[1:] if argv is None else argv), program)
    finally:
        if program and not gc.isenabled():
            gc.enable()


def program() -> int:
    """``collsim`` (the console script) and ``python -m simulator``: :func:`main` on
    ``sys.argv``; a simulate run then ends without its interpreter's teardown
    (:func:`exit_now`) and asks numpy's OpenBLAS for one thread (:func:`_one_blas_thread`)."""
    if sys.argv[1:2] == ["simulate"]:
        _one_blas_thread()
    code = main()
    if sys.argv[1:2] == ["simulate"]:
        exit_now(code)
    return code


def _one_blas_thread() -> None:
    """A simulate process uses numpy for vector arithmetic (the fabric's set-up, rank
    classes), never for linear algebra, yet numpy's OpenBLAS starts a thread per core when
    it loads, and those threads spin for a while after each call: on a 2-core machine
    that is CPU taken from the run (a 9216-GPU ``--contention`` run executes 3% fewer
    instructions without them, and the same count in every run instead of one that moves
    with the threads' spinning). A user's own OPENBLAS_NUM_THREADS is kept."""
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def exit_now(code: int) -> None:
    """End a ``collsim simulate`` process (:func:`program`) without tearing its objects down
    one by one.

    What a normal exit does that matters here is done first: the output streams flushed,
    the atexit handlers run; then ``os._exit``. Freeing every module and object a run made
    is 3% of a run's instructions and nobody sees it. Returns (a normal exit follows) when
    a flush fails (the interpreter then reports it as usual) or another thread still runs."""
    import atexit
    import os

    threading = sys.modules.get("threading")
    if not 0 <= code <= 255 or (threading is not None and threading.active_count() > 1):
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:   # e.g. a closed pipe: the normal exit reports it
        return
    atexit._run_exitfuncs()
    os._exit(code)


def _main(argv: list[str], program: bool) -> int:
    warnings.formatwarning = _format_warning  # flags may warn while they are parsed
    module = _command_module(argv[0]) if argv and argv[0] in COMMANDS else None
    if module is not None:
        # `collsim COMMAND ...`: the command parser alone (the top-level one has nothing to
        # add before the command name, and building it costs a millisecond)
        return _run_command(argv[0], argv, program=program, module=module)
    import argparse
    available = _available()
    parser = argparse.ArgumentParser(
        prog="collsim", description="Trace-driven network and collective simulator for "
        "distributed LLM and MoE training. Bandwidths are GB/s (10^9 bytes/s) unless a unit "
        "is given; times are reported in microseconds or milliseconds.")
    parser.add_argument("--version", action="version", version=f"collsim {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # parse only the command name first, so only that command's module is imported
    for name, text in available.items():
        sub.add_parser(name, help=text, add_help=False)
    pre, _ = parser.parse_known_args(argv)
    if pre.command is None:
        parser.print_help()
        return 2
    return _run_command(pre.command, argv, pre.debug, program)


def _run_command(command: str, argv: list[str], debug: bool = False,
                 program: bool = False, module=None) -> int:
    if module is None:
        module = importlib.import_module(f"simulator.commands.{command}")
    if hasattr(module, "main"):  # commands with their own argument parser (measure)
        _collect_from_here(program)
        return module.main(argv[argv.index(command) + 1:])
    rest = [a for a in argv if a != "--debug"]
    rest = rest[rest.index(command) + 1:]
    args = None
    if command == "simulate":
        # the common lines without argparse (importing it and building this parser is a
        # tenth of a small run): the options argparse would make, or None to ask it
        from .commands.simulate_args import read
        args = read(rest)
    if args is None:
        args = command_parser(command, module).parse_args(rest)
    # --debug anywhere on the line (before or after the subcommand) shows tracebacks
    args.debug = args.debug or debug or "--debug" in argv
    _collect_from_here(program)
    return run_guarded(module.run, args, command)


def command_parser(command: str, module):
    """The argparse parser of ``collsim COMMAND`` (``module``: its commands module)."""
    import argparse
    full = argparse.ArgumentParser(prog=f"collsim {command}", description=module.HELP)
    full.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    module.add_arguments(full)
    return full


#: objects a program run allocates between two youngest-generation collections (Python's
#: default is 700): a run's objects are mostly kept to its end (rows, plans, prices), so a
#: collection finds little to free; at 700 they were 3-5% of a run's instructions
PROGRAM_GC_THRESHOLD = 20_000


def _collect_from_here(program: bool) -> None:
    """The command's work begins: the garbage collector runs again, less often than by
    default, and never looks at what exists now (modules, the parser: all kept to the
    end)."""
    if program:
        gc.freeze()
        gc.set_threshold(PROGRAM_GC_THRESHOLD, *gc.get_threshold()[1:])
        gc.enable()


def _terminate_by_unwinding() -> None:
    """SIGTERM and SIGHUP raise Terminated, so a killed command cleans up like Ctrl-C."""
    # the C module: `signal` wraps the same calls in enums, which costs 1% of a run to build
    import _signal as signal  # type: ignore[import-not-found]

    from .errors import Terminated

    def handler(signum, _frame):
        raise Terminated(signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread
            pass


def run_guarded(func, args, command: str | None = None) -> int:
    """Run a command; input errors become one line and exit 2 (a traceback only with --debug).

    The library names option keys (``nic_bw``); the line names the flag the user typed
    (``--nic-bw``): :func:`simulator.config.flags.for_cli`, the one key -> flag table."""
    from .errors import InputError, Terminated

    warnings.formatwarning = _format_warning
    _terminate_by_unwinding()
    try:
        return int(func(args) or 0)
    except InputError as exc:
        if getattr(args, "debug", False):
            raise
        from .config.flags import for_cli
        from .report.escape import for_terminal
        exc = for_cli(exc, command)
        # one line, and nothing from an input file that a terminal would act on
        print(f"collsim: error: {for_terminal(' '.join(str(exc).splitlines()))}",
              file=sys.stderr)
        return 2
    except Terminated as exc:
        print("collsim: terminated", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("collsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
