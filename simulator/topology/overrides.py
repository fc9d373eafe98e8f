"""A topology changed by the cluster options, and the engine's cluster view of it.

The engine places groups on servers of ``Cluster.gpus_per_server`` GPUs, so the cluster is
derived from the topology. Cluster options change the topology where they can apply
(bandwidths, NIC count, the per-call floor) and are refused where they cannot
(``gpus_per_server`` different from the topology's, NIC options on a topology without NICs).
Errors name the option key (``nic_bw``); the CLI shows the flag (``--nic-bw``). The cost model
built on the result lives in ``simulator/costmodel/registry.py`` (topology does not import
costmodel).
"""
from __future__ import annotations


from ..cluster import Cluster
from ..errors import InputError
from ..records import replace
from .spec import TopologySpec


def apply_overrides(spec: TopologySpec, gpus_per_server=None, nvlink_gbps=None, nic_gbps=None,
                    nics_per_server=None, base_latency_ns=None) -> TopologySpec:
    gps = spec.gpus_per_server
    if gpus_per_server is not None and gpus_per_server != gps:
        raise InputError(f"topology {spec.name} has {gps} GPUs per server; change its YAML "
                         f"rather than asking for {gpus_per_server}", field="gpus_per_server")
    if nvlink_gbps is not None:
        su = spec.scale_up
        scale = nvlink_gbps / su.bandwidth_gbps
        spec = replace(spec, scale_up=replace(
            su, bandwidth_gbps=nvlink_gbps,
            links=tuple((a, b, bw * scale) for a, b, bw in su.links)))
    if nic_gbps is not None or nics_per_server is not None:
        flag = "nic_bw" if nic_gbps is not None else "nics_per_server"
        if spec.nics is None:
            raise InputError(f"topology {spec.name} has no NICs (one server, NVLink only)",
                             field=flag)
        nics = spec.nics
        if nic_gbps is not None:
            nics = replace(nics, bandwidth_gbps=nic_gbps)
        if nics_per_server is not None:
            if nics_per_server % gps == 0:
                nics = replace(nics, attach="gpu", count=nics_per_server // gps)
            elif gps % nics_per_server == 0:
                nics = replace(nics, attach="server", count=nics_per_server)
            else:
                raise InputError(f"{nics_per_server} NICs cannot be shared evenly by {gps} GPUs",
                                 field="nics_per_server")
        spec = replace(spec, nics=nics)
    if base_latency_ns is not None:
        spec = replace(spec, nccl=replace(spec.nccl, call_overhead_ns=base_latency_ns,
                                          call_overhead_op=()))
    return spec


def apply_fabric_overrides(spec: TopologySpec, fabric_type=None, oversubscription=None,
                           servers_per_leaf=None, ecmp=None) -> TopologySpec:
    """The topology with its fabric changed (option keys named in errors)."""
    asked = [(key, v) for key, v in (("fabric", fabric_type),
                                     ("oversubscription", oversubscription),
                                     ("servers_per_leaf", servers_per_leaf),
                                     ("ecmp", ecmp)) if v is not None]
    if not asked:
        return spec
    if spec.fabric is None:
        raise InputError(f"topology {spec.name} has no fabric (one server)", field=asked[0][0])
    fab = spec.fabric
    if fabric_type is not None:
        fab = replace(fab, type=fabric_type)
    if oversubscription is not None:
        if not oversubscription >= 1 or oversubscription > 1e6:
            raise InputError(f"must be at least 1 (downlink:uplink), got {oversubscription:g}",
                             field="oversubscription")
        fab = replace(fab, oversubscription=float(oversubscription))
    if servers_per_leaf is not None:
        fab = replace(fab, servers_per_leaf=int(servers_per_leaf))
    if ecmp is not None:
        mode, _, seed = str(ecmp).partition(":")
        if mode not in ("ideal", "hash") or (seed and (mode != "hash" or not seed.isdigit())):
            raise InputError(f"expected ideal, hash or hash:SEED, got {ecmp!r}", field="ecmp")
        fab = replace(fab, ecmp=mode, ecmp_seed=int(seed) if seed else fab.ecmp_seed)
    return replace(spec, fabric=fab)


def cluster_for(spec: TopologySpec) -> Cluster:
    """The engine's view of a topology: its server size and headline figures."""
    d = Cluster()
    nics = spec.nics
    return Cluster(
        name=spec.name, gpus_per_server=spec.gpus_per_server,
        nvlink_gbps=spec.scale_up.bandwidth_gbps, nvlink_efficiency=spec.scale_up.efficiency,
        nic_gbps=nics.bandwidth_gbps if nics else d.nic_gbps,
        nic_efficiency=nics.efficiency if nics else d.nic_efficiency,
        nics_per_server=nics.per_server(spec.gpus_per_server) if nics else d.nics_per_server,
        base_latency_ns=spec.nccl.call_overhead_ns)
