"""The topology YAML schema: checks every key and turns the document into a TopologySpec.

A topology file describes identical servers and how they are joined (docs/topologies.md)::

    name: dgx-h100
    gpus_per_server: 8
    servers: auto                  # or a number; auto = as many as the job needs
    scale_up: {type: nvswitch, bandwidth: 450GB/s, latency: 0us, efficiency: 0.82}
    nics: {per: gpu, count: 1, bandwidth: 400Gbit/s, latency: 0.5us}
    fabric: {type: rail-optimized, servers_per_leaf: 32, oversubscription: 1}
    nccl: {call_overhead: 16us, method: torch.distributed}
    placement: {ranks: [0, 1, 2, ...]}   # rank i runs on GPU ranks[i] (default: GPU i)

Errors name the file, the line and the key (``mine.yaml:7: nics.bandwidth: missing``).
"""
from __future__ import annotations

import math

from ..collectives import ENGINE_NAMES
from ..records import field, record, replace
from ..units import parse_bandwidth_gbps, parse_latency_ns, parse_size_bytes
from .yamlsrc import Located

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any

PROTOCOLS = ("LL", "LL128", "Simple")
ALGORITHMS = ("ring", "tree", "p2p")

# NCCL's published tuning constants (src/graph/tuning.cc, docs/cost-models.md), microseconds,
# per protocol (LL, LL128, Simple). "p2p" (grouped send/recv: all-to-all, send/recv) has no
# entry in NCCL's tuner; ours is fitted to two H200s (docs/topologies.md).
DEFAULT_BASE_LATENCY_US = {
    "ring": (6.6, 14.0, 8.4),
    "tree": (6.8, 14.0, 8.4),
    "p2p": (6.0, 6.0, 8.0),
}
DEFAULT_HOP_LATENCY_US = {
    "nvlink": {"ring": (0.6, 1.9, 3.4), "tree": (0.6, 1.25, 4.0), "p2p": (0.6, 0.6, 1.0)},
    "net": {"ring": (2.7, 4.0, 14.0), "tree": (5.0, 8.5, 14.0), "p2p": (2.7, 2.7, 6.0)},
}
# Share of a link's achievable bandwidth each protocol reaches: LL sends 4 bytes of flag with
# every 4 bytes of data; LL128 keeps 120 of every 128 bytes.
DEFAULT_PROTOCOL_BANDWIDTH = {"LL": 0.5, "LL128": 0.92, "Simple": 1.0}

SCALE_UP_TYPES = ("nvswitch", "direct")
NIC_ATTACH = ("gpu", "server")
FABRIC_TYPES = ("rail-optimized", "fat-tree")
METHODS = ("torch.distributed", "nccl-tests")
#: operation names used as keys in YAML (per-operation efficiency and call overhead)
OP_NAMES = ENGINE_NAMES


@record(frozen=True)
class ScaleUp:
    """The scale-up (NVLink) domain of one server."""

    type: str                     # nvswitch: every GPU has one port into the switch
    bandwidth_gbps: float         # per GPU per direction (line rate)
    latency_ns: int               # wire latency of one link, added to NCCL's hop latency
    efficiency: float             # share of the line rate large transfers reach
    # direct only: (local GPU a, local GPU b, GB/s per direction) for every joined pair
    links: tuple[tuple[int, int, float], ...] = ()
    # per-operation efficiency where NCCL's kernels, not the wires, set the pace
    # an entry is a number, or ((ranks, efficiency), ...) measured at several group sizes
    op_efficiency: tuple[tuple[str, float | tuple[tuple[int, float], ...]], ...] = ()
    # NVSwitch multicast with in-switch reduction (NVLink SHARP): the share of the line rate
    # NCCL's NVLS all-reduce kernels reach; None: the switch has none (no NVLS algorithm)
    nvls_efficiency: float | None = None

    def efficiency_for(self, op: str, ranks: int = 2) -> float:
        """The operation's efficiency for a group of ``ranks``: linear in log2(ranks) between
        the measured sizes, the nearest one outside them."""
        v = dict(self.op_efficiency).get(op, self.efficiency)
        if isinstance(v, float):
            return v
        pts = sorted(v)
        if ranks <= pts[0][0]:
            return pts[0][1]
        for (n0, e0), (n1, e1) in zip(pts, pts[1:]):
            if ranks <= n1:
                t = (math.log2(ranks) - math.log2(n0)) / (math.log2(n1) - math.log2(n0))
                return e0 + t * (e1 - e0)
        return pts[-1][1]


@record(frozen=True)
class Nics:
    """A server's scale-out NICs."""

    attach: str                   # gpu: `count` NICs per GPU (rail-optimized); server: per server
    count: int
    bandwidth_gbps: float         # one NIC, per direction
    latency_ns: int
    efficiency: float
    pcie_gbps: float              # GPU <-> NIC

    def per_server(self, gpus_per_server: int) -> int:
        return self.count * gpus_per_server if self.attach == "gpu" else self.count


@record(frozen=True)
class Fabric:
    """The scale-out fabric joining the servers' NICs."""

    type: str                     # rail-optimized: NIC k of every server on the leaf of rail k
    servers_per_leaf: int         # servers under one leaf (per rail when rail-optimized)
    oversubscription: float       # leaf downlink : uplink bandwidth (1 = non-blocking)
    leaf_latency_ns: int
    spine_latency_ns: int
    # equal-cost paths over the spine: "ideal" spreads every flow evenly over a leaf's uplinks
    # (one aggregate link), "hash" puts each connection on one uplink by a seeded hash
    ecmp: str = "ideal"
    ecmp_seed: int = 0
    uplinks: int | None = None    # uplinks (spine switches) per leaf; None: down ports / oversub
    # in-network reduction in the switches (InfiniBand SHARP): NCCL's CollNet algorithms apply
    sharp: bool = False


@record(frozen=True)
class NcclParams:
    """NCCL's latencies and protocol shares, and the framework's floor per call."""

    call_overhead_ns: int = 0     # floor of one call issued by a framework (0: none)
    call_overhead_op: tuple[tuple[str, int], ...] = ()   # per-operation floors
    method: str = "nccl-tests"
    base_latency_us: dict = field(default_factory=lambda: dict(DEFAULT_BASE_LATENCY_US))
    hop_latency_us: dict = field(default_factory=lambda: {
        k: dict(v) for k, v in DEFAULT_HOP_LATENCY_US.items()})
    protocol_bandwidth: dict = field(default_factory=lambda: dict(DEFAULT_PROTOCOL_BANDWIDTH))
    # p2p pipeline fill: bytes moved before sending and receiving overlap
    buffer_bytes: int = 4 << 20
    p2p_concurrency: int = 8      # peers a rank exchanges with at once in a grouped send/recv
    # share of the NICs' achievable rate NCCL's network transport reaches (its proxy's
    # send/recv over IB verbs, which rings, trees, NVLS-tree, PAT and send/recv use); the
    # transport's settings (queue pairs per connection, adaptive routing) move it; CollNet's
    # SHARP transport is not concerned. 1: the NICs' rate
    net_efficiency: float = 1.0
    # pace of one NCCL p2p channel to a peer on another server (bytes/ns = GB/s; None: no
    # limit); how many channels a peer gets: costmodel/nccl.py, p2p_net_channels_per_peer
    p2p_net_channel_bw: float | None = None
    # the NCCL release the cluster runs ((2, 28, 9)): selects its rule for the p2p channels
    # of a network peer; None: the newest rule
    version: tuple[int, ...] | None = None

    def overhead_ns(self, op: str) -> int:
        return dict(self.call_overhead_op).get(op, self.call_overhead_ns)


@record(frozen=True)
class TopologySpec:
    """A topology file, checked: identical servers and how they are joined."""

    name: str
    source: str
    gpus_per_server: int
    servers: int | None           # None: as many as the job needs
    scale_up: ScaleUp
    nics: Nics | None
    fabric: Fabric | None
    nccl: NcclParams
    ranks: tuple[int, ...] | None = None   # rank i -> GPU ranks[i]
    description: str = ""
    gpu: str = ""

    def with_servers(self, servers: int | None) -> TopologySpec:
        return replace(self, servers=servers)


# -- checks -------------------------------------------------------------------------------
_TOP_KEYS = {"name", "description", "gpu", "gpus_per_server", "servers", "scale_up", "nics",
             "fabric", "nccl", "placement"}
_SCALE_UP_KEYS = {"type", "bandwidth", "latency", "efficiency", "links", "nvls_efficiency"}
_NIC_KEYS = {"per", "count", "bandwidth", "latency", "efficiency", "pcie_bandwidth"}
_FABRIC_KEYS = {"type", "servers_per_leaf", "oversubscription", "leaf_latency",
                "spine_latency", "ecmp", "ecmp_seed", "uplinks", "sharp"}
ECMP_MODES = ("ideal", "hash")
_NCCL_KEYS = {"call_overhead", "method", "base_latency", "hop_latency", "protocol_bandwidth",
              "buffer_size", "p2p_concurrency", "net_efficiency",
              "p2p_net_channel_bandwidth", "version"}
_PLACEMENT_KEYS = {"ranks"}


class _Checker:
    def __init__(self, doc: Located):
        self.doc = doc

    def err(self, path, msg):
        return self.doc.error(tuple(path), msg)

    def mapping(self, value: Any, path: tuple, allowed: set[str], what: str) -> dict:
        if not isinstance(value, dict):
            raise self.err(path, f"expected a mapping of {what}, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                hint = _closest(str(key), allowed)
                raise self.err(path + (key,), f"unknown key in {what}" +
                               (f" (did you mean {hint!r}?)" if hint else "") +
                               f"; known: {', '.join(sorted(allowed))}")
        return value

    def required(self, m: dict, path: tuple, key: str, hint: str = ""):
        if key not in m or m[key] is None:
            from ..errors import InputError
            dotted = ".".join(map(str, path + (key,)))
            raise InputError("missing" + (f" ({hint})" if hint else ""), path=self.doc.source,
                             line=self.doc.line(path + (key,) if key in m else path),
                             field=dotted)
        return m[key]

    def bandwidth(self, value, path) -> float:
        if isinstance(value, bool):
            raise self.err(path,
                           f"expected a bandwidth such as 450GB/s or 400Gbit/s, got {value!r}")
        try:
            return parse_bandwidth_gbps(value if isinstance(value, (int, float)) else str(value))
        except ValueError as exc:
            raise self.err(path, str(exc)) from None

    def latency(self, value, path) -> int:
        if isinstance(value, bool) or value is None:
            raise self.err(path, f"expected a latency such as 0.5us or 300ns, got {value!r}")
        try:
            ns = parse_latency_ns(value if isinstance(value, (int, float)) else str(value))
        except ValueError as exc:
            raise self.err(path, str(exc)) from None
        if ns < 0:
            raise self.err(path, f"latency must not be negative, got {value!r}")
        return ns

    def size(self, value, path) -> int:
        if isinstance(value, bool):
            raise self.err(path, f"expected a size such as 4MiB, got {value!r}")
        try:
            return parse_size_bytes(str(value))
        except ValueError as exc:
            raise self.err(path, str(exc)) from None

    def integer(self, value, path, minimum: int = 1, maximum: int = 1 << 22) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            from ..readers.numbers import shown   # errors only: a good preset never loads it
            raise self.err(path, f"expected a whole number, got {shown(value)}")
        if value < minimum:
            raise self.err(path, f"must be at least {minimum}, got {value}")
        if value > maximum:  # counts of GPUs, servers, NICs: 2^22 is the largest world
            raise self.err(path, f"must be at most {maximum:,}, got {value:,}")
        return value

    def number(self, value, path, lo: float, hi: float, lo_open=True) -> float:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value)):
            from ..readers.numbers import shown
            raise self.err(path, f"expected a number, got {shown(value)}")
        if (value <= lo if lo_open else value < lo) or value > hi:
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise self.err(path, f"must be in {interval}, got {value}")
        return float(value)

    def choice(self, value, path, options) -> str:
        if value not in options:
            raise self.err(path, f"expected one of {', '.join(options)}, got {value!r}")
        return value

    def triple(self, value, path) -> tuple[float, float, float]:
        """(LL, LL128, Simple) in microseconds, as a list of 3 or a mapping."""
        if isinstance(value, dict):
            self.mapping(value, path, set(PROTOCOLS), "protocols")
            missing = [p for p in PROTOCOLS if p not in value]
            if missing:
                raise self.err(path, f"missing protocol(s) {', '.join(missing)}")
            items = [(value[p], path + (p,)) for p in PROTOCOLS]
        elif isinstance(value, list) and len(value) == 3:
            items = [(v, path + (i,)) for i, v in enumerate(value)]
        else:
            raise self.err(path, "expected [LL, LL128, Simple] latencies in microseconds")
        ll, ll128, simple = (self.latency(v, p) / 1000.0 for v, p in items)
        return ll, ll128, simple


def _kind(v) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: f"the text {v!r}"}
    return names.get(type(v), repr(v))


def _closest(word: str, options) -> str | None:
    import difflib
    m = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return m[0] if m else None


def parse_spec(doc: Located) -> TopologySpec:
    c = _Checker(doc)
    top = c.mapping(doc.data, (), _TOP_KEYS, "topology keys")
    name = str(top.get("name") or "")
    gps = c.integer(c.required(top, (), "gpus_per_server", "GPUs in one scale-up domain"),
                    ("gpus_per_server",))
    servers_raw = top.get("servers", "auto")
    servers = None if servers_raw == "auto" else c.integer(servers_raw, ("servers",))

    # scale-up domain
    su = c.mapping(c.required(top, (), "scale_up", "the NVLink/NVSwitch domain"), ("scale_up",),
                   _SCALE_UP_KEYS, "scale_up keys")
    p = ("scale_up",)
    su_type = c.choice(su.get("type", "nvswitch"), p + ("type",), SCALE_UP_TYPES)
    su_bw = c.bandwidth(c.required(su, p, "bandwidth", "per GPU per direction, e.g. 450GB/s"),
                        p + ("bandwidth",))
    su_lat = c.latency(su.get("latency", 0), p + ("latency",))
    su_eff, op_eff = _per_op(c, su.get("efficiency", 1.0), p + ("efficiency",),
                             lambda v, q: c.number(v, q, 0, 1), "efficiency",
                             by_ranks=True)
    links: list[tuple[int, int, float | None]] = []   # None: a share of the GPU's bandwidth
    if "links" in su:
        if su_type != "direct":
            raise c.err(p + ("links",), "links apply only to type: direct")
        raw = su["links"]
        if not isinstance(raw, list) or not raw:
            raise c.err(p + ("links",), "expected a list of [gpu_a, gpu_b] or "
                        "[gpu_a, gpu_b, bandwidth] items")
        seen: set[tuple[int, int]] = set()
        for i, item in enumerate(raw):
            ip = p + ("links", i)
            if not isinstance(item, list) or len(item) not in (2, 3):
                raise c.err(ip, "expected [gpu_a, gpu_b] or [gpu_a, gpu_b, bandwidth], "
                                f"got {item!r}")
            a, b = (c.integer(item[k], ip + (k,), minimum=0) for k in (0, 1))
            for k, g in ((0, a), (1, b)):
                if g >= gps:
                    raise c.err(ip + (k,), f"local GPU {g} does not exist "
                                f"(gpus_per_server is {gps}: 0..{gps - 1})")
            if a == b:
                raise c.err(ip, f"a link joins two different GPUs, got {a} twice")
            if (min(a, b), max(a, b)) in seen:
                raise c.err(ip, f"GPUs {a} and {b} are joined twice")
            seen.add((min(a, b), max(a, b)))
            bw = c.bandwidth(item[2], ip + (2,)) if len(item) == 3 else None
            links.append((a, b, bw))
    elif su_type == "direct":
        links = [(a, b, None) for a in range(gps) for b in range(a + 1, gps)]
    pair_links: list[tuple[int, int, float]] = []
    if su_type == "direct":
        # an unspecified pair bandwidth splits the GPU's bandwidth over its links
        degree = [0] * gps
        for a, b, _ in links:
            degree[a] += 1
            degree[b] += 1
        pair_links = [(a, b, bw if bw is not None else su_bw / max(degree[a], degree[b]))
                      for a, b, bw in links]
    nvls = None
    if su.get("nvls_efficiency") is not None:
        if su_type != "nvswitch":
            raise c.err(("scale_up", "nvls_efficiency"), "NVLS needs an NVSwitch (type: nvswitch)")
        nvls = c.number(su["nvls_efficiency"], ("scale_up", "nvls_efficiency"), 0, 1)
    scale_up = ScaleUp(su_type, su_bw, su_lat, su_eff, tuple(pair_links), op_eff, nvls)

    # NICs
    nics = None
    if top.get("nics") is not None:
        n = c.mapping(top["nics"], ("nics",), _NIC_KEYS, "nics keys")
        p = ("nics",)
        attach = c.choice(n.get("per", "gpu"), p + ("per",), NIC_ATTACH)
        count = c.integer(n.get("count", 1), p + ("count",))
        nic_bw = c.bandwidth(c.required(n, p, "bandwidth", "one NIC per direction, e.g. 400Gbit/s"),
                             p + ("bandwidth",))
        nics = Nics(attach, count, nic_bw, c.latency(n.get("latency", 0), p + ("latency",)),
                    c.number(n.get("efficiency", 1.0), p + ("efficiency",), 0, 1),
                    c.bandwidth(n.get("pcie_bandwidth", "64GB/s"), p + ("pcie_bandwidth",)))
        if attach == "server" and count > gps and count % gps:
            raise c.err(p + ("count",), f"{count} NICs cannot be shared evenly by {gps} GPUs")
        if attach == "server" and count < gps and gps % count:
            raise c.err(p + ("count",), f"{gps} GPUs cannot share {count} NICs evenly")

    # fabric
    fabric = None
    if top.get("fabric") is not None:
        f = c.mapping(top["fabric"], ("fabric",), _FABRIC_KEYS, "fabric keys")
        p = ("fabric",)
        if nics is None:
            raise c.err(p, "a fabric needs NICs: add a nics section")
        fabric = Fabric(c.choice(f.get("type", "rail-optimized"), p + ("type",), FABRIC_TYPES),
                        c.integer(f.get("servers_per_leaf", 32), p + ("servers_per_leaf",)),
                        c.number(f.get("oversubscription", 1.0), p + ("oversubscription",),
                                 0, 1e6),
                        c.latency(f.get("leaf_latency", 0), p + ("leaf_latency",)),
                        c.latency(f.get("spine_latency", 0), p + ("spine_latency",)),
                        c.choice(f.get("ecmp", "ideal"), p + ("ecmp",), ECMP_MODES),
                        c.integer(f.get("ecmp_seed", 0), p + ("ecmp_seed",), minimum=0,
                                  maximum=2 ** 63 - 1),
                        (c.integer(f["uplinks"], p + ("uplinks",))
                         if f.get("uplinks") is not None else None),
                        _flag(c, f.get("sharp", False), p + ("sharp",)))
        if f.get("oversubscription", 1.0) < 1:
            raise c.err(p + ("oversubscription",), "must be at least 1 (downlink:uplink)")

    nccl = _parse_nccl(c, top.get("nccl") or {})

    ranks = None
    if top.get("placement") is not None:
        pl = c.mapping(top["placement"], ("placement",), _PLACEMENT_KEYS, "placement keys")
        raw = c.required(pl, ("placement",), "ranks", "GPU of every rank, e.g. [0, 2, 1, 3]")
        if raw == "megatron":
            ranks = None
        else:
            if not isinstance(raw, list) or not raw:
                raise c.err(("placement", "ranks"), "expected a list of GPU ids (rank i runs "
                            "on GPU ranks[i]) or 'megatron'")
            rank_on_gpu: dict[int, int] = {}
            for i, g in enumerate(raw):
                g = c.integer(g, ("placement", "ranks", i), minimum=0)
                if g in rank_on_gpu:
                    raise c.err(("placement", "ranks", i),
                                f"GPU {g} is given to ranks {rank_on_gpu[g]} and {i}")
                rank_on_gpu[g] = i
            ranks = tuple(raw)
            if servers is not None and max(ranks) >= servers * gps:
                i = ranks.index(max(ranks))
                raise c.err(("placement", "ranks", i), f"GPU {max(ranks)} does not exist "
                            f"({servers} servers x {gps} GPUs)")

    if servers not in (None, 1) and nics is None:
        raise c.err(("servers",), f"GPUs on different servers are not reachable: {servers} "
                    "servers but no nics/fabric section")
    if servers not in (None, 1) and fabric is None:
        raise c.err(("servers",), f"GPUs on different servers are not reachable: {servers} "
                    "servers but no fabric section")
    return TopologySpec(name=name, source=doc.source, gpus_per_server=gps, servers=servers,
                        scale_up=scale_up, nics=nics, fabric=fabric, nccl=nccl, ranks=ranks,
                        description=str(top.get("description") or ""),
                        gpu=str(top.get("gpu") or ""))


def _flag(c: _Checker, value, path) -> bool:
    if not isinstance(value, bool):
        raise c.err(path, f"expected true or false, got {value!r}")
    return value


def _parse_nccl(c: _Checker, raw) -> NcclParams:
    p = ("nccl",)
    n = c.mapping(raw, p, _NCCL_KEYS, "nccl keys")
    d = NcclParams()
    base = dict(d.base_latency_us)
    if "base_latency" in n:
        m = c.mapping(n["base_latency"], p + ("base_latency",), set(ALGORITHMS), "algorithms")
        for algo, v in m.items():
            base[algo] = c.triple(v, p + ("base_latency", algo))
    hop = {k: dict(v) for k, v in d.hop_latency_us.items()}
    if "hop_latency" in n:
        m = c.mapping(n["hop_latency"], p + ("hop_latency",), {"nvlink", "net"}, "link classes")
        for cls, algos in m.items():
            am = c.mapping(algos, p + ("hop_latency", cls), set(ALGORITHMS), "algorithms")
            for algo, v in am.items():
                hop[cls][algo] = c.triple(v, p + ("hop_latency", cls, algo))
    pbw = dict(d.protocol_bandwidth)
    if "protocol_bandwidth" in n:
        m = c.mapping(n["protocol_bandwidth"], p + ("protocol_bandwidth",), set(PROTOCOLS),
                      "protocols")
        for proto, v in m.items():
            pbw[proto] = c.number(v, p + ("protocol_bandwidth", proto), 0, 1)
    overhead, overhead_op = _per_op(c, n.get("call_overhead", 0), p + ("call_overhead",),
                                    c.latency, "call overhead")
    return NcclParams(
        call_overhead_ns=overhead, call_overhead_op=overhead_op,
        method=c.choice(n.get("method", "nccl-tests"), p + ("method",), METHODS),
        base_latency_us=base, hop_latency_us=hop, protocol_bandwidth=pbw,
        buffer_bytes=c.size(n.get("buffer_size", "4MiB"), p + ("buffer_size",)),
        p2p_concurrency=c.integer(n.get("p2p_concurrency", 8), p + ("p2p_concurrency",)),
        net_efficiency=c.number(n.get("net_efficiency", 1.0), p + ("net_efficiency",), 0, 1),
        p2p_net_channel_bw=(None if n.get("p2p_net_channel_bandwidth") is None else c.bandwidth(
            n["p2p_net_channel_bandwidth"], p + ("p2p_net_channel_bandwidth",))),
        version=None if n.get("version") is None else _nccl_version(c, n["version"],
                                                                     p + ("version",)))


def _nccl_version(c: _Checker, value, path) -> tuple[int, ...]:
    """An NCCL release, '2.28.9' or '2.29', as text: a YAML number would lose the zeros of
    2.30, so it is refused."""
    if isinstance(value, float):
        raise c.err(path, f"write the release quoted, e.g. '2.28.9' (the number {value!r} "
                    "may have lost a trailing zero)")
    import re   # rare (a preset with a version): the default run imports no re (5% of it)

    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        raise c.err(path, f"expected an NCCL release such as 2.28.9, got {value!r}")
    return tuple(int(x) for x in text.split("."))


def _per_op(c: _Checker, raw, path, parse, what, by_ranks=False):
    """A value for every operation, or ``{default: v, all_gather: v2, ...}``; with
    ``by_ranks`` an operation's value may be ``{2: v, 4: v'}`` (per group size)."""
    if not isinstance(raw, dict):
        return parse(raw, path), ()
    c.mapping(raw, path, {"default", *OP_NAMES}, f"{what} per operation")
    if "default" not in raw:
        raise c.err(path, f"missing default (the {what} of operations not listed)")
    default = parse(raw["default"], path + ("default",))
    out = []
    for op, v in raw.items():
        if op == "default":
            continue
        q = path + (op,)
        if by_ranks and isinstance(v, dict):
            if not v:
                raise c.err(q, "expected {ranks: value, ...}, got an empty mapping")
            pts = []
            for n, e in v.items():
                if isinstance(n, bool) or not isinstance(n, int) or n < 2:
                    raise c.err(q, f"group sizes are whole numbers >= 2, got {n!r}")
                pts.append((n, parse(e, q + (n,))))
            out.append((op, tuple(sorted(pts))))
        else:
            out.append((op, parse(v, q)))
    return default, tuple(out)
