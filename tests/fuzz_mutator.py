"""The deterministic byte mutator and the time guard shared by the fuzz campaigns
(test_fuzz_readers.py, test_fuzz_inputs.py)."""
from __future__ import annotations

import contextlib
import random
import signal
import threading


# ------------------------------------------------------------------------------ mutator

NUMBERS = ["0", "-1", "-0", "+7", "1.5", "1e-9", "1e18", "1e30", "1e309", "-1e309", "1e400",
           "nan", "NaN", "inf", "-inf", "Infinity", "9" * 30, "9" * 400, "9" * 5000,
           str(2 ** 62), str(2 ** 62 + 1), str(2 ** 63), str(2 ** 64), "0x10", "1_000",
           "\u0661\u0662", "\uff11\uff12", "\u00b2", "1e", ".", "e5", "", "--5", "5-"]
JUNK = ["\x00", "\x7f", "\u00a0", "\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\ufeff",
        "\u200b", "\u0301", "\u202e", "é", "漢字", "😀", "\t", "\r", " ", ":", "::", "#",
        "ALLREDUCE_EP", "ALLTOALL_DP_EP", "NONE", "SENDRECV", "ALLREDUCE_PP", "-1"]
HEADER_KEYS = ["model_parallel_NPU_group:", "ep:", "pp:", "vpp:", "ga:", "all_gpus:",
               "pp_comm:", "checkpoints:", "checkpoint_initiates:", "tp:"]
HEADER_VALUES = ["0", "1", "2", "3", "4", "7", "8", "16", "64", "1024", "131072", "1048576",
                 "4194304", "4194305", str(2 ** 31), str(2 ** 40), "9" * 30, "2.0", "2.5", "-4"]


class Mutator:
    """Deterministic mutations of a file's bytes; ``history`` says what was done."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.history: list[str] = []

    def __call__(self, data: bytes, rounds: int | None = None) -> bytes:
        rounds = rounds or self.rng.choice([1, 1, 1, 2, 3])
        for _ in range(rounds):
            op = self.rng.choice(self.OPS)
            data = op(self, data)
            self.history.append(op.__name__)
        return data

    # helpers
    def _lines(self, data: bytes) -> list[str]:
        return data.decode("utf-8", "surrogateescape").split("\n")

    def _join(self, lines: list[str]) -> bytes:
        return "\n".join(lines).encode("utf-8", "surrogateescape")

    def _line_index(self, lines: list[str], head: int | None = None) -> int:
        if head is not None and self.rng.random() < 0.5:
            return self.rng.randrange(min(len(lines), head))
        return self.rng.randrange(len(lines))

    # operations
    def flip_bytes(self, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            if b:
                i = self.rng.randrange(len(b))
                b[i] = b[i] ^ (1 << self.rng.randrange(8)) if self.rng.random() < 0.5 \
                    else self.rng.randrange(256)
        return bytes(b)

    def truncate(self, data: bytes) -> bytes:
        return data[: self.rng.randrange(len(data) + 1)]

    def delete_field(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i = self._line_index(lines, head=4)
        toks = lines[i].split()
        if toks:
            del toks[self.rng.randrange(len(toks))]
            lines[i] = self.rng.choice([" ", "\t"]).join(toks)
        return self._join(lines)

    def duplicate_field(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i = self._line_index(lines, head=4)
        toks = lines[i].split()
        if toks:
            j = self.rng.randrange(len(toks))
            toks.insert(j, toks[j])
            lines[i] = " ".join(toks)
        return self._join(lines)

    def replace_number(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i = self._line_index(lines, head=3)
        toks = lines[i].split()
        numeric = [j for j, t in enumerate(toks) if t.lstrip("-").replace(".", "").isdigit()]
        if numeric:
            toks[self.rng.choice(numeric)] = self.rng.choice(NUMBERS)
            lines[i] = " ".join(toks)
        return self._join(lines)

    def extreme_valid_number(self, data: bytes) -> bytes:
        """A valid but extreme time or size: the engine must cope, not just the parser."""
        lines = self._lines(data)
        i = self._line_index(lines)
        toks = lines[i].split()
        numeric = [j for j, t in enumerate(toks) if t.isdigit()]
        if numeric:
            toks[self.rng.choice(numeric)] = str(self.rng.choice(
                [0, 1, 2 ** 20, 2 ** 40, 2 ** 50, 2 ** 62, 10 ** 18]))
            lines[i] = "\t".join(toks)
        return self._join(lines)

    def insert_junk_text(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i = self._line_index(lines, head=3)
        pos = self.rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:pos] + self.rng.choice(JUNK) + lines[i][pos:]
        return self._join(lines)

    def tabs(self, data: bytes) -> bytes:
        return data.replace(b" ", b"\t") if self.rng.random() < 0.5 else data.replace(b"\t", b" ")

    def blank_lines(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i = self.rng.randrange(len(lines) + 1)
        lines[i:i] = [self.rng.choice(["", "   ", "\t", "\r"])] * self.rng.randint(1, 3)
        return self._join(lines)

    def binary_junk(self, data: bytes) -> bytes:
        pos = self.rng.randrange(len(data) + 1)
        junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 64)))
        return data[:pos] + junk + data[pos:]

    def duplicate_or_delete_line(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
        if self.rng.random() < 0.5:
            lines.insert(j, lines[i])
        else:
            del lines[i]
        return self._join(lines)

    def line_endings(self, data: bytes) -> bytes:
        return data.replace(b"\n", self.rng.choice([b"\r\n", b"\r", b"\n\n"]))

    def header_value(self, data: bytes) -> bytes:
        lines = self._lines(data)
        toks = lines[0].split()
        key, value = self.rng.choice(HEADER_KEYS), self.rng.choice(HEADER_VALUES)
        if key in toks and toks.index(key) + 1 < len(toks):
            toks[toks.index(key) + 1] = value
        elif self.rng.random() < 0.5 and toks:
            del toks[self.rng.randrange(len(toks))]
        else:
            toks += [key, value]
        lines[0] = " ".join(toks)
        return self._join(lines)

    def row_count(self, data: bytes) -> bytes:
        lines = self._lines(data)
        if len(lines) > 1:
            lines[1] = self.rng.choice(["0", "1", "-3", "99999999999", "abc", "", "1 2",
                                        lines[1] + ".0", "9" * 5000])
        return self._join(lines)

    def swap_words(self, data: bytes) -> bytes:
        lines = self._lines(data)
        i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
        a, b = lines[i].split(), lines[j].split()
        if a and b:
            x, y = self.rng.randrange(len(a)), self.rng.randrange(len(b))
            a[x], b[y] = b[y], a[x]
            lines[i], lines[j] = " ".join(a), " ".join(b) if i != j else " ".join(a)
        return self._join(lines)

    OPS = [flip_bytes, truncate, delete_field, duplicate_field, replace_number,
           replace_number, extreme_valid_number, insert_junk_text, tabs, blank_lines,
           binary_junk, duplicate_or_delete_line, line_endings, header_value, header_value,
           row_count, swap_words]


# ------------------------------------------------------------------------------ harness

class TimeLimit(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """SIGALRM-based guard (main thread only; elsewhere no guard)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def handler(_signum, _frame):
        raise TimeLimit(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
