"""What-ifs that make ranks differ: slow GPUs (stragglers), from command-line specs.

``rank=17,compute=1.3`` slows rank 17's compute by 30%; ``ranks=0-7,compute=1.1`` a range;
``fraction=0.01,compute=1.2,seed=7`` a random 1% of the ranks (a fixed seed gives the same
draw every time). Specs resolve to (rank, factor) pairs once the world size is known.
"""
from __future__ import annotations

from .errors import InputError, warn
from .readers.numbers import parse_float, parse_int, shown
from .records import record

FLAG = "--straggler"
#: the option keys errors name (simulator.config.ScenarioOptions); the CLI shows the flags
STRAGGLERS, DEGRADES, FAILURE, JITTER = "stragglers", "degrades", "failure", "jitter"
#: ranks a spec may name: the workload reader's largest world (TP x PP x EP <= 2^22)
MAX_RANKS = 1 << 22
#: a GPU 1000 times slower is not a straggler but a typo
MAX_FACTOR = 1e3


def _pairs(text: str, flag: str, example: str, allow_empty: bool = False) -> dict[str, str]:
    """``k=v,k=v`` -> {k: v}; a key given twice is an error (the last would win silently)."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or (not value and not allow_empty):
            raise InputError(f"expected key=value pairs such as {example!r}, got {shown(text)}",
                             field=flag)
        if key in fields:
            raise InputError(f"{shown(key)} given twice in {shown(text)}", field=flag)
        fields[key] = value
    return fields


def _num(fields: dict, key: str, default: str, flag: str, kind=float, **bounds):
    try:
        if kind is int:
            return parse_int(fields.get(key, default), **bounds)
        return parse_float(fields.get(key, default), **bounds)
    except ValueError as exc:
        raise InputError(f"{key}: {exc}", field=flag) from None


@record(frozen=True)
class StragglerSpec:
    """A --straggler what-if, parsed: which ranks (or what fraction) run compute slower."""

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
                                 f"(in {shown(self.text)})", field=STRAGGLERS)
        return [(r, self.compute) for r in self.ranks]


def parse_straggler(text: str) -> StragglerSpec:
    fields = _pairs(text, STRAGGLERS, "rank=17,compute=1.3")
    unknown = set(fields) - {"rank", "ranks", "fraction", "compute", "seed"}
    if unknown:
        raise InputError(f"unknown key(s) {shown(', '.join(sorted(unknown)))} in {shown(text)}; "
                         "use rank, ranks, fraction, compute, seed", field=STRAGGLERS)
    compute = _num(fields, "compute", "1", STRAGGLERS)
    seed = _num(fields, "seed", "0", STRAGGLERS, int, lo=0, hi=2 ** 63 - 1)
    fraction = _num(fields, "fraction", "0", STRAGGLERS) if "fraction" in fields else None
    ranks: list[int] = []
    if "rank" in fields:
        ranks.append(_num(fields, "rank", "0", STRAGGLERS, int, lo=0, hi=MAX_RANKS - 1))
    if "ranks" in fields:
        for piece in fields["ranks"].split(";"):
            lo_text, dash, hi_text = piece.partition("-")
            lo = _num({"ranks": lo_text}, "ranks", "", STRAGGLERS, int, lo=0, hi=MAX_RANKS - 1)
            hi = (_num({"ranks": hi_text}, "ranks", "", STRAGGLERS, int, lo=0, hi=MAX_RANKS - 1)
                  if dash else lo)
            if hi < lo:
                raise InputError(f"the range {shown(piece)} is empty (write low-high)",
                                 field=STRAGGLERS)
            if len(ranks) + hi - lo + 1 > MAX_RANKS:
                raise InputError(f"more than {MAX_RANKS:,} ranks in {shown(text)}",
                                 field=STRAGGLERS)
            ranks.extend(range(lo, hi + 1))
    if not 0 < compute <= MAX_FACTOR:
        raise InputError(f"compute factor must be in (0, {MAX_FACTOR:g}], got {compute:g}",
                         field=STRAGGLERS)
    if fraction is not None and not 0 < fraction <= 1:
        raise InputError(f"fraction must be in (0, 1], got {fraction:g}", field=STRAGGLERS)
    if (fraction is None) == (not ranks):
        raise InputError(f"give either rank/ranks or fraction in {shown(text)}", field=STRAGGLERS)
    if compute == 1:
        warn(f"{FLAG} {shown(text)} changes nothing: give compute=<factor>, e.g. compute=1.3 "
             "for a GPU 30% slower")
    return StragglerSpec(text=text, ranks=tuple(ranks), fraction=fraction, compute=compute,
                         seed=seed)


def resolve_all(specs: list[StragglerSpec], world: int,
                draw: int = 0) -> tuple[tuple[int, float], ...]:
    """(rank, factor) pairs; a rank named twice takes the product of its factors."""
    factors: dict[int, float] = {}
    for spec in specs:
        for rank, f in spec.resolve(world, draw):
            factors[rank] = factors.get(rank, 1.0) * f
    return tuple(sorted((r, f) for r, f in factors.items() if f != 1.0))


DEGRADE_FLAG = "--degrade"


@record(frozen=True)
class DegradeSpec:
    """Slower scale-out NICs on one server or one GPU: ``server=3,nic=0.5,latency=5us``; or
    a leaf's uplinks to the spine inside the fabric: ``leaf=2,uplink=0.5`` (the leaf of pod
    2; on a rail-optimized fabric every rail's, or ``rail=R``'s alone)."""

    text: str
    server: int | None = None
    rank: int | None = None
    nic: float = 1.0
    extra_latency_ns: int = 0
    leaf: int | None = None          # pod of the leaf whose uplinks run slower
    rail: int | None = None          # rail-optimized: that rail's leaf only (None: all)
    uplink: float = 1.0              # bandwidth factor of the leaf's uplinks, both ways

    def resolve(self, world: int, gpus_per_server: int) -> list[tuple[int, float, int]]:
        if self.leaf is not None:
            return []                      # a fabric link, not a rank's NIC: resolve_uplinks
        if self.server is not None:
            first = self.server * gpus_per_server
            if first >= world:
                raise InputError(f"server {self.server} is outside the job's "
                                 f"{-(-world // gpus_per_server)} servers (in {shown(self.text)})",
                                 field=DEGRADES)
            ranks: range | list[int] = range(first, min(first + gpus_per_server, world))
        else:
            assert self.rank is not None   # a degrade names a server or a rank (parse)
            if self.rank >= world:
                raise InputError(f"rank {self.rank} is outside the job's {world} ranks "
                                 f"(in {shown(self.text)})", field=DEGRADES)
            ranks = [self.rank]
        return [(r, self.nic, self.extra_latency_ns) for r in ranks]


def parse_degrade(text: str) -> DegradeSpec:
    from .units import parse_latency_ns

    fields = _pairs(text, DEGRADES, "server=3,nic=0.5")
    if "leaf" in fields:
        return _parse_uplink_degrade(text, fields)
    unknown = set(fields) - {"server", "rank", "nic", "latency"}
    if unknown:
        raise InputError(f"unknown key(s) {shown(', '.join(sorted(unknown)))} in {shown(text)}; "
                         "use server "
                         "or rank, nic (bandwidth factor), latency (extra, e.g. 5us)",
                         field=DEGRADES)
    if ("server" in fields) == ("rank" in fields):
        raise InputError(f"give exactly one of server= or rank= in {shown(text)}", field=DEGRADES)
    server = (_num(fields, "server", "0", DEGRADES, int, lo=0, hi=MAX_RANKS - 1)
              if "server" in fields else None)
    rank = (_num(fields, "rank", "0", DEGRADES, int, lo=0, hi=MAX_RANKS - 1)
            if "rank" in fields else None)
    nic = _num(fields, "nic", "1", DEGRADES)
    try:
        extra = parse_latency_ns(fields["latency"]) if "latency" in fields else 0
    except ValueError as exc:
        raise InputError(f"latency: {exc}", field=DEGRADES) from None
    if not 0 < nic <= 1:
        raise InputError(f"nic is a bandwidth factor in (0, 1], got {nic}", field=DEGRADES)
    if (server is not None and server < 0) or (rank is not None and rank < 0) or extra < 0:
        raise InputError(f"negative value in {shown(text)}", field=DEGRADES)
    if nic == 1 and extra == 0:
        raise InputError(f"{shown(text)} changes nothing: give nic=<factor below 1> or latency=",
                         field=DEGRADES)
    return DegradeSpec(text=text, server=server, rank=rank, nic=nic, extra_latency_ns=extra)


def _parse_uplink_degrade(text: str, fields: dict) -> DegradeSpec:
    """``leaf=P,uplink=F[,rail=R]``: the uplinks of pod P's leaf at F of their bandwidth."""
    unknown = set(fields) - {"leaf", "rail", "uplink"}
    if unknown:
        raise InputError(f"unknown key(s) {shown(', '.join(sorted(unknown)))} with leaf= in "
                         f"{shown(text)}; use leaf (pod), uplink (bandwidth factor), rail "
                         "(optional)", field=DEGRADES)
    leaf = _num(fields, "leaf", "0", DEGRADES, int, lo=0, hi=MAX_RANKS - 1)
    rail = _num(fields, "rail", "0", DEGRADES, int, lo=0, hi=MAX_RANKS - 1) \
        if "rail" in fields else None
    if "uplink" not in fields:
        raise InputError(f"leaf= needs uplink=<bandwidth factor> in {shown(text)}",
                         field=DEGRADES)
    uplink = _num(fields, "uplink", "1", DEGRADES)
    if not 0 < uplink < 1:
        raise InputError(f"uplink is a bandwidth factor in (0, 1), got {uplink}",
                         field=DEGRADES)
    return DegradeSpec(text=text, leaf=leaf, rail=rail, uplink=uplink)


def resolve_uplinks(specs: list[DegradeSpec]) -> tuple[tuple[int, int | None, float], ...]:
    """(pod, rail or None for every rail, bandwidth factor) of every degraded leaf's uplinks;
    the same leaf named twice compounds."""
    out: dict[tuple[int, int | None], float] = {}
    for spec in specs:
        if spec.leaf is not None:
            key = (spec.leaf, spec.rail)
            out[key] = out.get(key, 1.0) * spec.uplink
    return tuple(sorted(((p, r, f) for (p, r), f in out.items()),
                        key=lambda e: (e[0], -1 if e[1] is None else e[1])))


def resolve_degrades(specs: list[DegradeSpec], world: int,
                     gpus_per_server: int) -> tuple[tuple[int, float, int], ...]:
    """(rank, NIC factor, extra latency) per affected rank; overlapping specs compound."""
    out: dict[int, tuple[float, int]] = {}
    specs = [s for s in specs if s.leaf is None]
    if specs and world <= gpus_per_server:
        warn(f"{DEGRADE_FLAG} changes nothing: the job's {world} GPUs fit in one server "
             f"({gpus_per_server} per server), so no traffic uses the NICs")
    for spec in specs:
        for rank, factor, extra in spec.resolve(world, gpus_per_server):
            f0, e0 = out.get(rank, (1.0, 0))
            out[rank] = (f0 * factor, e0 + extra)
    return tuple(sorted((r, f, e) for r, (f, e) in out.items()))


@record(frozen=True)
class FailureSpec:
    """A --fail what-if, parsed: when a failure hits and how long the restart takes (ns)."""

    at_ns: int
    restart_ns: int | None
    lost_iterations: int = 0


def parse_failure(text: str) -> FailureSpec:
    """``at=120ms,restart=300s[,lost-iterations=N]``: a node fails during the iteration."""
    from .units import parse_latency_ns

    fields = _pairs(text, FAILURE, "at=120ms,restart=300s")
    unknown = set(fields) - {"at", "restart", "lost-iterations", "server", "rank"}
    if unknown or "at" not in fields:
        raise InputError(f"needs at= (and optionally restart=, lost-iterations=); got "
                         f"{shown(text)}", field=FAILURE)
    try:
        at = parse_latency_ns(fields["at"])
        restart = parse_latency_ns(fields["restart"]) if "restart" in fields else None
    except ValueError as exc:
        raise InputError(f"bad value in {shown(text)}: {exc}", field=FAILURE) from None
    lost = _num(fields, "lost-iterations", "0", FAILURE, int, lo=0, hi=10 ** 6)
    for key in ("server", "rank"):
        if key in fields:
            _num(fields, key, "0", FAILURE, int, lo=0, hi=MAX_RANKS - 1)
            warn(f"--fail {key}= changes nothing: in a synchronous job every node's failure "
                 "stalls the whole iteration the same way; the lost time depends on at=, "
                 "restart= and lost-iterations= only")
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
    fields = _pairs(text, JITTER, "cv=0.05,seed=3")
    unknown = set(fields) - {"cv", "fwd", "ig", "wg", "seed"}
    if unknown:
        raise InputError(f"unknown key(s) {shown(', '.join(sorted(unknown)))} in {shown(text)}; "
                         "use cv, "
                         "fwd, ig, wg (coefficients of variation) and seed", field=JITTER)
    base = _num(fields, "cv", "0", JITTER)
    cvs = {k: _num(fields, k, str(base), JITTER) for k in ("fwd", "ig", "wg")}
    seed = _num(fields, "seed", "0", JITTER, int, lo=0, hi=2 ** 63 - 1)
    if any(not 0 <= v <= 10 for v in cvs.values()):
        raise InputError(f"coefficients of variation must be in [0, 10], got {shown(text)}",
                         field=JITTER)
    if not any(cvs.values()):
        raise InputError(f"{shown(text)} changes nothing: give cv= (or fwd/ig/wg) above 0",
                         field=JITTER)
    return tuple(sorted(cvs.items())), seed
