"""What-ifs that make ranks differ: slow GPUs (stragglers), from command-line specs.

``rank=17,compute=1.3`` slows rank 17's compute by 30%; ``ranks=0-7,compute=1.1`` a range;
``fraction=0.01,compute=1.2,seed=7`` a random 1% of the ranks (a fixed seed gives the same
draw every time). Specs resolve to (rank, factor) pairs once the world size is known.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

FLAG = "--straggler"


@dataclass(frozen=True)
class StragglerSpec:
    text: str
    ranks: tuple[int, ...] = ()
    fraction: float | None = None
    compute: float = 1.0
    seed: int = 0

    def resolve(self, world: int, draw: int = 0) -> list[tuple[int, float]]:
        if self.fraction is not None:
            count = max(1, round(self.fraction * world))
            rng = np.random.default_rng([self.seed, draw])
            chosen = rng.choice(world, size=min(count, world), replace=False)
            return [(int(r), self.compute) for r in sorted(chosen)]
        for r in self.ranks:
            if r >= world:
                raise InputError(f"rank {r} is outside the job's {world} ranks "
                                 f"(in {self.text!r})", field=FLAG)
        return [(r, self.compute) for r in self.ranks]


def parse_straggler(text: str) -> StragglerSpec:
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"expected key=value pairs such as 'rank=17,compute=1.3', got "
                             f"{text!r}", field=FLAG)
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"rank", "ranks", "fraction", "compute", "seed"}
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(sorted(unknown))} in {text!r}; use rank, "
                         "ranks, fraction, compute, seed", field=FLAG)
    try:
        compute = float(fields.get("compute", "1"))
        seed = int(fields.get("seed", "0"))
        fraction = float(fields["fraction"]) if "fraction" in fields else None
        ranks: list[int] = []
        if "rank" in fields:
            ranks.append(int(fields["rank"]))
        if "ranks" in fields:
            for piece in fields["ranks"].split(";"):
                lo, dash, hi = piece.partition("-")
                ranks.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    except ValueError as exc:
        raise InputError(f"bad number in {text!r}: {exc}", field=FLAG) from None
    if not compute > 0 or compute != compute or compute == float("inf"):
        raise InputError(f"compute factor must be a positive number, got {compute}", field=FLAG)
    if fraction is not None and not 0 < fraction <= 1:
        raise InputError(f"fraction must be in (0, 1], got {fraction}", field=FLAG)
    if (fraction is None) == (not ranks):
        raise InputError(f"give either rank/ranks or fraction in {text!r}", field=FLAG)
    if any(r < 0 for r in ranks):
        raise InputError(f"ranks must not be negative in {text!r}", field=FLAG)
    return StragglerSpec(text=text, ranks=tuple(ranks), fraction=fraction, compute=compute,
                         seed=seed)


def resolve_all(specs: list[StragglerSpec], world: int, draw: int = 0) -> tuple[tuple[int, float], ...]:
    """(rank, factor) pairs; a rank named twice takes the product of its factors."""
    factors: dict[int, float] = {}
    for spec in specs:
        for rank, f in spec.resolve(world, draw):
            factors[rank] = factors.get(rank, 1.0) * f
    return tuple(sorted((r, f) for r, f in factors.items() if f != 1.0))
