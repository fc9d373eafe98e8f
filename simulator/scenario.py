"""What-ifs that make ranks differ: slow GPUs (stragglers), from command-line specs.

``rank=17,compute=1.3`` slows rank 17's compute by 30%; ``ranks=0-7,compute=1.1`` a range;
``fraction=0.01,compute=1.2,seed=7`` a random 1% of the ranks (a fixed seed gives the same
draw every time). Specs resolve to (rank, factor) pairs once the world size is known.
"""
from __future__ import annotations

from dataclasses import dataclass

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
            import numpy as np

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


DEGRADE_FLAG = "--degrade"


@dataclass(frozen=True)
class DegradeSpec:
    """Slower scale-out NICs on one server or one GPU: ``server=3,nic=0.5,latency=5us``."""

    text: str
    server: int | None = None
    rank: int | None = None
    nic: float = 1.0
    extra_latency_ns: int = 0

    def resolve(self, world: int, gpus_per_server: int) -> list[tuple[int, float, int]]:
        if self.server is not None:
            first = self.server * gpus_per_server
            if first >= world:
                raise InputError(f"server {self.server} is outside the job's "
                                 f"{-(-world // gpus_per_server)} servers (in {self.text!r})",
                                 field=DEGRADE_FLAG)
            ranks = range(first, min(first + gpus_per_server, world))
        else:
            if self.rank >= world:
                raise InputError(f"rank {self.rank} is outside the job's {world} ranks "
                                 f"(in {self.text!r})", field=DEGRADE_FLAG)
            ranks = [self.rank]
        return [(r, self.nic, self.extra_latency_ns) for r in ranks]


def parse_degrade(text: str) -> DegradeSpec:
    from .units import parse_latency_ns

    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"expected key=value pairs such as 'server=3,nic=0.5', got {text!r}",
                             field=DEGRADE_FLAG)
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"server", "rank", "nic", "latency"}
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(sorted(unknown))} in {text!r}; use server "
                         "or rank, nic (bandwidth factor), latency (extra, e.g. 5us)",
                         field=DEGRADE_FLAG)
    if ("server" in fields) == ("rank" in fields):
        raise InputError(f"give exactly one of server= or rank= in {text!r}", field=DEGRADE_FLAG)
    try:
        server = int(fields["server"]) if "server" in fields else None
        rank = int(fields["rank"]) if "rank" in fields else None
        nic = float(fields.get("nic", "1"))
        extra = parse_latency_ns(fields["latency"]) if "latency" in fields else 0
    except ValueError as exc:
        raise InputError(f"bad value in {text!r}: {exc}", field=DEGRADE_FLAG) from None
    if not 0 < nic <= 1:
        raise InputError(f"nic is a bandwidth factor in (0, 1], got {nic}", field=DEGRADE_FLAG)
    if (server is not None and server < 0) or (rank is not None and rank < 0) or extra < 0:
        raise InputError(f"negative value in {text!r}", field=DEGRADE_FLAG)
    if nic == 1 and extra == 0:
        raise InputError(f"{text!r} changes nothing: give nic=<factor below 1> or latency=",
                         field=DEGRADE_FLAG)
    return DegradeSpec(text=text, server=server, rank=rank, nic=nic, extra_latency_ns=extra)


def resolve_degrades(specs: list[DegradeSpec], world: int,
                     gpus_per_server: int) -> tuple[tuple[int, float, int], ...]:
    """(rank, NIC factor, extra latency) per affected rank; overlapping specs compound."""
    out: dict[int, tuple[float, int]] = {}
    for spec in specs:
        for rank, factor, extra in spec.resolve(world, gpus_per_server):
            f0, e0 = out.get(rank, (1.0, 0))
            out[rank] = (f0 * factor, e0 + extra)
    return tuple(sorted((r, f, e) for r, (f, e) in out.items()))


@dataclass(frozen=True)
class FailureSpec:
    at_ns: int
    restart_ns: int | None
    lost_iterations: int = 0


def parse_failure(text: str) -> FailureSpec:
    """``at=120ms,restart=300s[,lost-iterations=N]``: a node fails during the iteration."""
    from .units import parse_latency_ns

    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"expected key=value pairs such as 'at=120ms,restart=300s', got "
                             f"{text!r}", field="--fail")
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"at", "restart", "lost-iterations", "server", "rank"}
    if unknown or "at" not in fields:
        raise InputError(f"--fail needs at= (and optionally restart=, lost-iterations=); got "
                         f"{text!r}", field="--fail")
    try:
        at = parse_latency_ns(fields["at"])
        restart = parse_latency_ns(fields["restart"]) if "restart" in fields else None
        lost = int(fields.get("lost-iterations", "0"))
    except ValueError as exc:
        raise InputError(f"bad value in {text!r}: {exc}", field="--fail") from None
    if lost < 0:
        raise InputError("lost-iterations must not be negative", field="--fail")
    return FailureSpec(at_ns=at, restart_ns=restart, lost_iterations=lost)


def failure_report(spec: FailureSpec, iteration_ns: int) -> dict:
    """Lost time when a node fails ``at_ns`` into an iteration of ``iteration_ns``.

    A synchronous job cannot finish the iteration without the failed node: the work since the
    last checkpoint (this iteration's ``at_ns`` plus ``lost_iterations`` whole ones) is lost,
    and the restart costs ``restart_ns``. Without a restart the iteration never completes.
    """
    if spec.at_ns >= iteration_ns:
        return {"fails_at_us": spec.at_ns / 1e3, "lost_us": 0.0,
                "summary": f"the failure at {spec.at_ns / 1e6:g} ms comes after the iteration "
                           f"ends ({iteration_ns / 1e6:.3f} ms): nothing is lost"}
    if spec.restart_ns is None:
        return {"fails_at_us": spec.at_ns / 1e3, "lost_us": None, "stalls": True,
                "summary": f"a node fails at {spec.at_ns / 1e6:g} ms: the iteration stalls "
                           "and never completes (give restart= for a restart from checkpoint)"}
    lost = spec.at_ns + spec.lost_iterations * iteration_ns + spec.restart_ns
    return {"fails_at_us": spec.at_ns / 1e3, "restart_us": spec.restart_ns / 1e3,
            "lost_us": lost / 1e3, "iteration_with_failure_us": (lost + iteration_ns) / 1e3,
            "summary": f"a node fails at {spec.at_ns / 1e6:g} ms: {lost / 1e6:.3f} ms lost "
                       f"({spec.at_ns / 1e6:g} ms of this iteration, {spec.lost_iterations} "
                       f"earlier iteration(s), restart {spec.restart_ns / 1e6:g} ms); the "
                       f"iteration completes after {(lost + iteration_ns) / 1e6:.3f} ms"}


def parse_jitter(text: str) -> tuple[tuple[tuple[str, float], ...], int]:
    """``cv=0.05,seed=3`` or ``fwd=0.05,ig=0.1,wg=0.02``: per-phase coefficients of variation
    of the compute times, and a seed."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected key=value pairs such as 'cv=0.05,seed=3', got {text!r}",
                             field="--jitter")
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"cv", "fwd", "ig", "wg", "seed"}
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(sorted(unknown))} in {text!r}; use cv, "
                         "fwd, ig, wg (coefficients of variation) and seed", field="--jitter")
    try:
        base = float(fields.get("cv", "0"))
        cvs = {k: float(fields.get(k, base)) for k in ("fwd", "ig", "wg")}
        seed = int(fields.get("seed", "0"))
    except ValueError as exc:
        raise InputError(f"bad number in {text!r}: {exc}", field="--jitter") from None
    if any(not 0 <= v <= 10 for v in cvs.values()):
        raise InputError(f"coefficients of variation must be in [0, 10], got {text!r}",
                         field="--jitter")
    if not any(cvs.values()):
        raise InputError(f"{text!r} changes nothing: give cv= (or fwd/ig/wg) above 0",
                         field="--jitter")
    return tuple(sorted(cvs.items())), seed
