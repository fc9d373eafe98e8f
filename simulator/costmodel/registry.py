"""Cost models by name: ``--cost-model`` / ``cost_model:`` choices and how each is built.

A builder takes the typed options (:class:`~simulator.config.ClusterOptions`,
:class:`~simulator.config.CostModelOptions`) and returns ``(cluster, cost model)``. Adding a
model is one function and one line in :data:`COST_MODELS`. Errors name the option key
(``nic_bw``, ``fabric``); the CLI shows the flag.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import InputError
from ..records import replace

#: the preset the default cluster describes (8 x H100 SXM per server, NVLink 450 GB/s per GPU,
#: one 400 Gbit/s NIC per GPU): what the nccl model prices on without a topology
DEFAULT_PRESET = "dgx-h100"
#: the preset of each GPU ``collsim generate`` models (its ``--gpu``): the cluster a generated
#: table is simulated on when the user names none. a100 (and a100-40gb): DGX A100 (300 GB/s
#: NVLink, 8 x 200G HDR);
#: h100: DGX H100 (450 GB/s, 400G NDR); h200: HGX H200 (478 GB/s measured, 400G); h800: H800
#: (200 GB/s NVLink, 400G RoCE). The figures and their sources are in each preset's YAML.
GPU_PRESETS = {"a100": "dgx-a100", "a100-40gb": "dgx-a100", "h100": "dgx-h100",
               "h200": "hgx-h200", "h800": "h800-roce"}
#: the most faithful model (checked against measurements, docs/validation.md); ``simai``
#: stays for comparisons with SimAI
DEFAULT_COST_MODEL = "nccl"
_FABRIC_KEYS = ("fabric", "oversubscription", "servers_per_leaf", "ecmp")


def preset_for_gpu(gpu) -> str | None:
    """The preset of a workload's GPU (``a100``, ``H100``...), None for one without a preset."""
    return GPU_PRESETS.get(str(gpu).strip().lower()) if gpu else None


def _default_spec(cluster, preset: str = DEFAULT_PRESET):
    """The default preset, resized to gpus_per_server where that differs (the options then
    describe the cluster, the preset the rest: NVSwitch, rail-optimized fabric, NCCL)."""
    from ..topology import load_spec
    spec = load_spec(preset)
    gps = cluster.gpus_per_server
    if gps is not None and gps != spec.gpus_per_server:
        spec = replace(spec, gpus_per_server=gps, name=f"{preset} ({gps} GPUs per server)")
    return spec


def _spec_with_overrides(cluster, preset: str = DEFAULT_PRESET):
    from ..topology import load_spec
    from ..topology.overrides import apply_overrides
    spec = load_spec(cluster.topology) if cluster.topology else _default_spec(cluster, preset)
    return apply_overrides(spec, gpus_per_server=cluster.gpus_per_server,
                           nvlink_gbps=cluster.nvlink_bw, nic_gbps=cluster.nic_bw,
                           nics_per_server=cluster.nics_per_server,
                           base_latency_ns=cluster.base_latency_ns)


def build_nccl(cluster, cost, preset: str = DEFAULT_PRESET):
    """NCCL's algorithms, protocols and per-hop latencies on a topology (or the default
    preset, ``preset``, changed by the cluster options)."""
    from ..costmodel.nccl import NcclCostModel
    from ..topology.overrides import apply_fabric_overrides, cluster_for

    spec = apply_fabric_overrides(_spec_with_overrides(cluster, preset), fabric_type=cluster.fabric,
                                  oversubscription=cluster.oversubscription,
                                  servers_per_leaf=cluster.servers_per_leaf, ecmp=cluster.ecmp)
    model = NcclCostModel(spec, algorithm=cost.algorithm, protocol=cost.protocol)
    # on the preset the flags imply, each collective is priced alone (fast, and as the simai
    # model does); a topology the user names shares its links (--contention either way)
    model.shares_links_by_default = bool(cluster.topology)
    return cluster_for(spec), model


def build_simai(cluster, cost, preset: str = DEFAULT_PRESET):
    """SimAI's analytical bus-bandwidth model (one alpha-beta formula per collective); on
    the topology, else on a preset other than the default when one is asked for."""
    from ..cluster import Cluster
    from ..costmodel.analytical import AnalyticalCostModel

    for key in _FABRIC_KEYS:
        if getattr(cluster, key) is not None:
            raise InputError("SimAI's busbw model has no fabric to change: use the nccl "
                             "cost model", field=key)
    if cluster.topology or preset != DEFAULT_PRESET:
        # SimAI's busbw model on the topology's headline figures (servers, NVLink, NICs);
        # the topology package (networkx) loads only here
        from ..topology.overrides import cluster_for
        built = cluster_for(_spec_with_overrides(cluster, preset))
    else:
        d = Cluster()
        name = None
        if cluster.nic_bw is not None or cluster.nics_per_server is not None:
            # the default's name says 8x400g: name what the options made instead
            nics = cluster.nics_per_server or d.nics_per_server
            name = f"h100-{nics}x{(cluster.nic_bw or d.nic_gbps) * 8:g}g"
        try:
            built = d.with_overrides(
                name=name, gpus_per_server=cluster.gpus_per_server,
                nvlink_gbps=cluster.nvlink_bw, nic_gbps=cluster.nic_bw,
                nics_per_server=cluster.nics_per_server,
                base_latency_ns=cluster.base_latency_ns)
        except InputError as exc:  # name the option key, not the Cluster field
            from ..config.flags import CLUSTER_FIELDS
            keys = {f: k for k, f in CLUSTER_FIELDS.items()}
            option_key = keys.get(exc.field, exc.field) if exc.field else None
            raise InputError(exc.message, field=option_key) from None
    return built, AnalyticalCostModel(built)


#: name -> builder(ClusterOptions, CostModelOptions) -> (Cluster, CostModel); one line a model
COST_MODELS: dict[str, Callable] = {
    "nccl": build_nccl,
    "simai": build_simai,
}


def cost_model_name(cluster, cost) -> str:
    """The cost model asked for, else the default (nccl, on a topology or the implied preset)."""
    return cost.cost_model or DEFAULT_COST_MODEL


def build_cost_model(cluster=None, cost=None, preset: str | None = None):
    """(cluster, cost model) from typed options: the one place every command and the sweep
    get them from. A calibration wraps whichever model was built. ``preset``: the preset the
    cluster options change instead of :data:`DEFAULT_PRESET` (the workload's GPU's, see
    :func:`preset_for_gpu`; used when no topology is named)."""
    from ..config import ClusterOptions, CostModelOptions

    cluster = cluster or ClusterOptions()
    cost = cost or CostModelOptions()
    name = cost_model_name(cluster, cost)
    if name not in COST_MODELS:
        raise InputError(f"unknown cost model {name!r}; known: {', '.join(COST_MODELS)}",
                         field="cost_model")
    built, model = (COST_MODELS[name](cluster, cost, preset=preset)
                    if preset and preset != DEFAULT_PRESET else COST_MODELS[name](cluster, cost))
    if cost.calibration:
        from ..calibration import wrap_with_calibration
        model = wrap_with_calibration(built, model, cost.calibration)
    return built, model
