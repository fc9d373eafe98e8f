"""Progress on stderr for long runs (random draws, sensitivity, co-located jobs, sweeps).

tqdm draws the bar where it is installed (the ``sweep`` extra); otherwise one plain line is
rewritten in place at most twice a second. Nothing is drawn when stderr is not a terminal
(a pipe, a log file, CI) or when the caller asks for quiet, so captured output stays clean.
"""
from __future__ import annotations

import sys
import time


def wanted(enabled: bool = True, stream=None) -> bool:
    """Draw progress only on a terminal, and only when not asked to be quiet."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return bool(enabled and isatty is not None and isatty())


class Progress:
    """``Progress(20, "draws", "draw")``; ``update()`` after each unit; ``close()`` at the end."""

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True,
                 stream=None, force: bool = False, use_tqdm: bool = True):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = total > 0 and (force or wanted(enabled, self.stream))
        self.done = 0
        self.bar = None
        self.last = 0.0
        self.postfix = ""
        if self.enabled and use_tqdm:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                tqdm.monitor_interval = 0
                self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream,
                                dynamic_ncols=True)

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.done += n
        if postfix is not None:
            self.postfix = postfix
        if not self.enabled:
            return
        if self.bar is not None:
            if postfix is not None:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last > 0.5 or self.done >= self.total:
            self.last = now
            tail = f": {self.postfix}" if self.postfix else ""
            self.stream.write(f"\r{self.desc}: {self.done}/{self.total} {self.unit}s{tail}")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and 0 < self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
