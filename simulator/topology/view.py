"""A topology that makes its links only when asked: the same answers as :class:`Topology`,
in constant time however many servers it has.

Pricing a collective routes a group's transfers and looks up the links on those routes; it
never needs the other links. A 9,216-GPU preset has some 30,000 directed links, and building
them (the graph's ``_build``) was most of a default ``collsim simulate`` run after Python's
start. :class:`TopologyView` routes exactly as :class:`Topology` (it is one, with the same
route code) but makes a link from its id (``("s3.nic2", "pod0.leaf2")``) on first lookup,
by the rules ``Topology._build`` lays the links out with. Whatever needs every link (the
networkx graph, :meth:`link_index`, :meth:`capacities`, iterating ``links``) builds them all
first, in the full topology's order, so flow-level contention and the fabric model see the
same ids and capacities. ``tests/test_topology_view.py`` checks every link and price
against the full topology on the bundled presets.
"""
from __future__ import annotations

from functools import lru_cache

from .graph import Link, LinkId, Topology, _check_servers
from .spec import TopologySpec


class _Links(dict):
    """Links made on first lookup; asking for all of them builds the full table."""

    def __init__(self, view: TopologyView):
        super().__init__()
        self._view = view

    def __missing__(self, lid: LinkId) -> Link:
        link = self._view._make_link(lid)
        if link is None:
            raise KeyError(lid)
        self[lid] = link
        return link

    def get(self, lid, default=None):  # type: ignore[override]
        try:
            return self[lid]
        except KeyError:
            return default

    def __contains__(self, lid) -> bool:  # type: ignore[override]
        return self.get(lid) is not None

    # everything that walks the table: the full build, in its order
    def __iter__(self):
        return iter(self._view._full_links())

    def __len__(self) -> int:
        return len(self._view._full_links())

    def keys(self):  # type: ignore[override]
        return self._view._full_links().keys()

    def values(self):  # type: ignore[override]
        return self._view._full_links().values()

    def items(self):  # type: ignore[override]
        return self._view._full_links().items()

    def copy(self):  # type: ignore[override]
        return dict(self._view._full_links())


def _index(name: str, prefix: str) -> int | None:
    """``int`` of what follows ``prefix`` in a node name (``gpu12`` -> 12), else None."""
    if not name.startswith(prefix):
        return None
    digits = name[len(prefix):]
    return int(digits) if digits.isdigit() and digits.isascii() else None


class TopologyView(Topology):
    """``servers`` servers of ``spec``, links made on demand (see the module docstring)."""

    def __init__(self, spec: TopologySpec, servers: int | None = None):  # noqa: super-init
        self.spec = spec
        self.servers = servers if servers is not None else (spec.servers or 1)
        self.gpus_per_server = spec.gpus_per_server
        self.num_gpus = self.servers * self.gpus_per_server
        self.name = spec.name
        _check_servers(spec, self.servers)
        self._graph = None
        self._nodes: dict[str, dict] = {}
        self._nics_of_gpu: list[list[int]] = []
        self._gpu_of_nic: list[int] = []
        self._owner: list[int] = []
        self._link_cache: dict = {}
        self._index = None
        self._full: dict[LinkId, Link] | None = None
        self._layout()
        su = spec.scale_up
        self._pairs = {(a, b): bw for a, b, bw in su.links}
        self._pairs.update({(b, a): bw for a, b, bw in su.links})
        self.links = _Links(self)
        self._check_reachable()
        self._ranks = None
        if spec.ranks:
            self._ranks = self._rank_map()
        self.route = lru_cache(maxsize=1 << 16)(self._route)
        self.route_latency_ns = lru_cache(maxsize=1 << 16)(
            lambda a, b: self.path_latency_ns(self.route(a, b)))

    # -- ranks: GPU i unless the spec places them --------------------------------------------
    @property
    def rank_gpu(self) -> list[int]:  # type: ignore[override]
        if self._ranks is None:
            self._ranks = self._rank_map()
        return self._ranks

    def gpu_of_rank(self, rank: int) -> int:
        if self._ranks is None and 0 <= rank < self.num_gpus:
            return rank
        return super().gpu_of_rank(rank)

    # -- links ------------------------------------------------------------------------------
    def _make_link(self, lid: LinkId) -> Link | None:
        """The link ``lid`` of the full topology, or None where it has none."""
        u, v = lid
        spec, gps = self.spec, self.gpus_per_server
        su, nics, fab = spec.scale_up, spec.nics, spec.fabric
        gu, gv = _index(u, "gpu"), _index(v, "gpu")
        if gu is not None or gv is not None:
            g, other = (gu, v) if gu is not None else (gv, u)
            assert g is not None
            if g >= self.num_gpus:
                return None
            s, local = divmod(g, gps)
            if gu is not None and gv is not None:        # direct NVLink between two GPUs
                if su.type == "nvswitch" or gu // gps != gv // gps:
                    return None
                bw = self._pairs.get((gu % gps, gv % gps))
                return None if bw is None else Link(bw, su.efficiency, su.latency_ns, "nvlink")
            if other == f"s{s}.nvsw" and su.type == "nvswitch":
                return Link(su.bandwidth_gbps, su.efficiency, su.latency_ns, "nvlink")
            if nics is not None and other.startswith(f"s{s}.nic"):
                k = _index(other, f"s{s}.nic")
                if k is not None and k in self._nics_of_gpu[local]:
                    return Link(nics.pcie_gbps, nics.efficiency, 0, "pcie")
            return None
        if fab is None or nics is None:
            return None
        if u.startswith("s") and ".nic" in u:            # NIC -> its leaf
            return self._nic_link(u, v, into_leaf=True)
        if v.startswith("s") and ".nic" in v:            # leaf -> NIC
            return self._nic_link(v, u, into_leaf=False)
        if u.startswith("pod"):                           # leaf -> spine
            return self._spine_link(u, v, up=True)
        if v.startswith("pod"):                           # spine -> leaf
            return self._spine_link(v, u, up=False)
        return None

    def _nic_link(self, nic: str, leaf: str, into_leaf: bool) -> Link | None:
        server, _, rest = nic.partition(".")
        s, k = _index(server, "s"), _index(rest, "nic")
        nics, fab = self.spec.nics, self.spec.fabric
        assert nics is not None and fab is not None
        if s is None or k is None or s >= self.servers or k >= len(self._gpu_of_nic):
            return None
        if leaf != self.leaf_name(s // fab.servers_per_leaf, k):
            return None
        # into the leaf: cable + the leaf's latency; out of it: the cable
        lat = nics.latency_ns + fab.leaf_latency_ns if into_leaf else nics.latency_ns
        return Link(nics.bandwidth_gbps, nics.efficiency, lat, "nic")

    def _spine_link(self, leaf: str, spine: str, up: bool) -> Link | None:
        nics, fab = self.spec.nics, self.spec.fabric
        assert nics is not None and fab is not None
        if self.pods <= 1:
            return None
        pod_name, _, rail_name = leaf.partition(".")
        pod = _index(pod_name, "pod")
        if pod is None or pod >= self.pods:
            return None
        rail = _index(rail_name, "leaf") if fab.type == "rail-optimized" else 0
        if rail is None or rail >= self.rails or leaf != self.leaf_name(pod, rail):
            return None
        lat = fab.spine_latency_ns if up else fab.leaf_latency_ns
        if fab.ecmp == "ideal":
            if spine != "spine":
                return None
            return Link(self.uplink_gbps, nics.efficiency, lat, "fabric")
        j = _index(spine, "spine")
        if j is None or j >= self.uplinks:
            return None
        return Link(self.uplink_gbps / self.uplinks, nics.efficiency, lat, "fabric")

    def _full_links(self) -> dict[LinkId, Link]:
        """Every link, in the full topology's order (built once)."""
        if self._full is None:
            lazy = self.links
            self.links, self._owner, self._nodes = {}, [], {}
            try:
                self._build()
                self._full = self.links
            finally:
                self.links = lazy
        return self._full

    # -- what needs every link (or the nodes and owners the full build records) --------
    @property
    def graph(self):
        self._full_links()
        return super().graph

    def link_index(self):
        self._full_links()
        return super().link_index()
