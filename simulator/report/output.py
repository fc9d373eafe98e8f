"""The one writer of output files: a set of outputs is written completely or not at all.

Every command writes through :func:`write_all`. What it promises:

- **Regular files** are staged: each is written to a temporary ``.collsim-*.tmp`` beside its
  target (beside the file a symlink points at, so the link stays a link), flushed to disk,
  given the old file's mode and owner, and only when *every* output is staged are they renamed
  into place. SIGINT, SIGTERM and SIGHUP are held during the renames, so a signal lands before
  them (every output old, temporaries removed) or after them (every output new). An error
  during the renames (which should not happen: the temporaries are in the same directories)
  puts the old files back from hard-link backups.
- **What is not a regular file** (a FIFO, a character device such as ``/dev/null``, anything
  under ``/dev`` or ``/proc`` such as ``/proc/self/fd/1``) is opened and written through,
  never replaced, after the regular files are in place.
- **An output that is an input, or two outputs that are one file** (same inode, or the same
  path once symlinks are resolved; two ``-``) are refused before anything is written
  (:func:`check_paths`); so is a directory, a read-only file, or a missing directory.
- **SIGKILL** cannot be caught: each regular file is then still either its old content or its
  complete new content (rename is atomic), but a set may be part old, part new, and staged
  ``.collsim-*.tmp`` (and ``.collsim-*.old`` backup links) may remain beside the targets.
"""
from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterable, Mapping

from ..errors import InputError

STDOUT = "-"
_PREFIX = ".collsim-"


def write_atomic(path: str, data: bytes | str, inputs: Iterable[str] = ()) -> None:
    """Write one output (see :func:`write_all`)."""
    write_all({path: data}, inputs=inputs)


def _is_passthrough_path(path: str) -> bool:
    """Paths that name a file descriptor or a device: written through, never replaced."""
    a = os.path.abspath(path)
    return a.startswith(("/dev/", "/proc/"))


def _keys(path: str) -> set:
    """What a path refers to: its inode if it exists and its path with symlinks resolved.

    Character devices (``/dev/null``, a terminal) get no key: any number of readers and
    writers may share one.
    """
    keys: set = set()
    if path == STDOUT:
        keys.add(("stdout",))
        try:
            st = os.fstat(sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            return keys
    else:
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return keys
        keys.add(("path", os.path.realpath(path)))
    if st is not None and not stat.S_ISCHR(st.st_mode):
        keys.add(("inode", st.st_dev, st.st_ino))
    return keys


def check_paths(outputs: Iterable[tuple[str, str]], inputs: Iterable[str] = ()) -> None:
    """Refuse outputs that would overwrite an input or each other.

    ``outputs``: (what, path) pairs, ``what`` being the flag or the kind of file, as the user
    should read it in the message. Raises InputError (exit 2) before anything is written.
    """
    seen: dict = {}
    outs = [(what, path) for what, path in outputs if path]
    for what, path in outs:
        keys = _keys(path)
        clash = next((seen[k] for k in keys if k in seen), None)
        if clash is not None:
            if path == STDOUT:
                raise InputError(f"{clash} and {what} both write to standard output; "
                                 "give one of them a file", field=what)
            raise InputError(f"{clash} and {what} name the same file; one would replace the "
                             "other", path=path, field=what)
        seen.update({k: what for k in keys})
    for src in inputs:
        if not src or src == STDOUT or not os.path.exists(src):
            continue
        src_keys = _keys(src)
        for what, path in outs:
            if path != STDOUT and _keys(path) & src_keys:
                raise InputError(f"would overwrite the input {src}; choose another output "
                                 "path", path=path, field=what)


def _os_error(exc: OSError, path: str, doing: str = "cannot write") -> InputError:
    return InputError(f"{doing}: {exc.strerror or exc}", path=path)


def _stage(target: str, data: bytes, old: os.stat_result | None, shown: str,
           staged: list[tuple[str, str]]) -> str:
    """Write ``data`` to a temporary file beside ``target``, recorded in ``staged`` as soon
    as it exists (so that an interruption at any point finds it to remove)."""
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        raise InputError("the output directory does not exist", path=shown)
    try:
        # here, not at the top: a run that writes no file (--quiet) needs no tempfile, which
        # imports shutil and random (16 M instructions)
        import tempfile

        with signals_held():  # no moment where the temporary exists unrecorded
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=_PREFIX, suffix=".tmp")
            staged.append((tmp, target))
    except OSError as exc:
        raise _os_error(exc, shown, "cannot write into its directory") from None
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if old is not None:
                os.chmod(tmp, stat.S_IMODE(old.st_mode))
                with contextlib.suppress(OSError):  # only root may give a file away
                    os.chown(tmp, old.st_uid, old.st_gid)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        except OSError as exc:
            raise _os_error(exc, shown) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT, SIGTERM and SIGHUP (delivered when the block ends) in this thread."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _write_through(path: str, data: bytes) -> None:
    try:
        st = os.stat(path)
        flags = os.O_WRONLY | (os.O_TRUNC if stat.S_ISREG(st.st_mode) else 0)
        fd = os.open(path, flags)
    except OSError as exc:
        raise _os_error(exc, path) from None
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as exc:
        raise _os_error(exc, path) from None
    finally:
        os.close(fd)


def _encode(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def write_all(outputs: Mapping[str, bytes | str], inputs: Iterable[str] = ()) -> None:
    """Write several rendered outputs as one set (see the module docstring).

    ``outputs`` maps paths (``-`` for standard output) to their content; ``inputs`` are the
    files the command read, none of which may be an output.
    """
    inputs = list(inputs)
    check_paths([(p, p) for p in outputs], inputs)
    staged: list[tuple[str, str]] = []       # (temporary, target)
    through: list[tuple[str, bytes]] = []    # written to, never replaced
    to_stdout = None
    try:
        for path, data in outputs.items():
            if path == STDOUT:
                to_stdout = data
                continue
            payload = _encode(data)
            if _is_passthrough_path(path):
                if not os.path.exists(path):
                    raise InputError("no such device or file descriptor", path=path)
                through.append((path, payload))
                continue
            target = os.path.realpath(path)
            try:
                old = os.stat(target)
            except FileNotFoundError:
                old = None
            except OSError as exc:
                raise _os_error(exc, path) from None
            if old is not None and stat.S_ISDIR(old.st_mode):
                raise InputError("is a directory, expected a file name", path=path)
            if old is not None and not stat.S_ISREG(old.st_mode):
                through.append((path, payload))
                continue
            if old is not None and not os.access(target, os.W_OK):
                raise InputError("the file is read-only; not replacing it", path=path)
            _stage(target, payload, old, path, staged)
        _commit(staged)
        staged = []
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    for path, payload in through:
        _write_through(path, payload)
    if to_stdout is not None:
        sys.stdout.write(to_stdout if isinstance(to_stdout, str)
                         else to_stdout.decode("utf-8", "replace"))
        sys.stdout.flush()


def _commit(staged: list[tuple[str, str]]) -> None:
    """Rename every temporary into place with signals held; on an error put back the old."""
    if not staged:
        return
    with signals_held():
        renamed: list[tuple[str, str | None]] = []   # (target, backup link; None: was new)
        backups: list[str] = []
        try:
            for i, (tmp, target) in enumerate(staged):
                backup = None
                if os.path.lexists(target):
                    backup = os.path.join(os.path.dirname(target),
                                          f"{_PREFIX}{os.getpid()}-{i}.old")
                    try:
                        os.link(target, backup)
                        backups.append(backup)
                    except OSError:
                        backup = ""  # no hard links here: this one cannot be rolled back
                os.replace(tmp, target)
                renamed.append((target, backup))
        except OSError as exc:
            for target, backup in reversed(renamed):
                with contextlib.suppress(OSError):
                    if backup:
                        os.replace(backup, target)
                    elif backup is None:
                        os.unlink(target)
            raise _os_error(exc, staged[len(renamed)][1]) from None
        finally:
            for backup in backups:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
