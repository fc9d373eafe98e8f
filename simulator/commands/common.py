"""Command-line options shared by the commands that build a cluster and a cost model."""
from __future__ import annotations

import argparse

from ..cluster import Cluster
from ..costmodel.registry import COST_MODELS, DEFAULT_COST_MODEL, DEFAULT_PRESET
from ..units import format_bandwidth, implausible_bandwidth, parse_bandwidth_gbps, parse_latency_ns


def bandwidth(text: str) -> float:
    try:
        return parse_bandwidth_gbps(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class BandwidthAction(argparse.Action):
    """A bandwidth flag: parses a unit (a bare number is GB/s), warns when a bare number is
    implausible for the part, and, for an old spelling, that it is deprecated."""

    def __init__(self, option_strings, dest, part: str, new_name: str | None = None, **kwargs):
        self.part, self.new_name = part, new_name
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..errors import warn
        try:
            gbps = parse_bandwidth_gbps(values)
        except ValueError as exc:
            parser.error(f"argument {option_string}: {exc}")
        if self.new_name:
            warn(f"{option_string} is deprecated and will be removed: use {self.new_name} "
                 f"(the same value: a bare number is GB/s; 'gbps' reads as gigabits, so write "
                 f"a unit, e.g. 400Gbit/s or 50GB/s)")
        message = implausible_bandwidth(values, gbps, self.part, option_string)
        if message:
            warn(message)
        setattr(namespace, self.dest, gbps)


def latency(text: str) -> int:
    try:
        return parse_latency_ns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: the largest count any flag takes: the workload reader's largest world (2^22 GPUs)
MAX_COUNT = 1 << 22


def positive_int(text: str, hi: int = MAX_COUNT) -> int:
    """A whole number 1 .. ``hi`` in ASCII digits (not ``١٦``, ``1_6`` or 5,000 digits)."""
    from ..readers.numbers import parse_int

    try:
        return parse_int(text, lo=1, hi=hi)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace(">= 1", "at least 1")) from None


def large_positive_int(text: str) -> int:
    """As :func:`positive_int`, up to 2^40 (parameter counts, byte counts)."""
    return positive_int(text, 1 << 40)


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    d = Cluster()
    g = p.add_argument_group("cluster (defaults: 8-GPU H100/H200 servers, 8 x 400 Gbit/s NICs; "
                             "a generated table with none of these: its GPU's preset)")
    g.add_argument("--gpus-per-server", type=positive_int, metavar="N",
                   help=f"GPUs in one scale-up (NVLink) domain (default {d.gpus_per_server})")
    g.add_argument("--nvlink-bw", action=BandwidthAction, part="nvlink", metavar="BW",
                   help=f"NVLink bandwidth per GPU per direction: a unit (450GB/s, "
                        f"3600Gbit/s) or a bare number in GB/s (default "
                        f"{format_bandwidth(d.nvlink_gbps)})")
    g.add_argument("--nic-bw", action=BandwidthAction, part="nic", metavar="BW",
                   help=f"bandwidth of one NIC per direction: a unit (400Gbit/s, 50GB/s) or a "
                        f"bare number in GB/s (default {format_bandwidth(d.nic_gbps)})")
    # the old spellings, for a release: same meaning (GB/s), with a deprecation warning
    g.add_argument("--nvlink-gbps", dest="nvlink_bw", action=BandwidthAction, part="nvlink",
                   new_name="--nvlink-bw", help=argparse.SUPPRESS)
    g.add_argument("--nic-gbps", dest="nic_bw", action=BandwidthAction, part="nic",
                   new_name="--nic-bw", help=argparse.SUPPRESS)
    g.add_argument("--nics-per-server", type=positive_int, metavar="N",
                   help=f"scale-out NICs per server (default {d.nics_per_server})")
    g.add_argument("--base-latency", type=latency, metavar="T",
                   help=f"fixed cost of one collective call, e.g. 10us or 500ns; a bare number "
                        f"is microseconds (default {d.base_latency_ns / 1000:g} us); with "
                        f"--topology: the framework's floor per call (0 = nccl-tests' view)")
    g.add_argument("--topology", metavar="NAME|FILE",
                   help="price collectives as NCCL runs them on a topology: a preset (dgx-h100, "
                        "h200x2, hgx-h200, dgx-a100, h800-roce, fat-tree-h100; NAME:GPUS for a "
                        "size) or a YAML file (docs/topologies.md); the flags above then "
                        "override its values")
    f = p.add_argument_group("fabric (with --topology: change its scale-out fabric)")
    f.add_argument("--fabric", choices=["rail-optimized", "fat-tree"],
                   help="rail-optimized: NIC k of every server on rail k's leaf; fat-tree: "
                        "all of a server's NICs on one leaf")
    f.add_argument("--oversubscription", type=float, metavar="RATIO",
                   help="leaf downlink:uplink bandwidth, e.g. 2 for 2:1 (1 = non-blocking)")
    f.add_argument("--servers-per-leaf", type=positive_int, metavar="N",
                   help="servers under one leaf (per rail when rail-optimized)")
    f.add_argument("--ecmp", metavar="MODE",
                   help="paths over the spine: 'ideal' (every flow spread evenly over a "
                        "leaf's uplinks, the default) or 'hash' / 'hash:SEED' (each "
                        "connection on one uplink by a seeded hash: collisions show)")
    g.add_argument("--cost-model", choices=list(COST_MODELS), metavar="|".join(COST_MODELS),
                   help=f"how a collective is priced. nccl: NCCL's algorithms, protocols and "
                        f"per-hop latencies on a topology (--topology, or without it the "
                        f"{DEFAULT_PRESET} preset changed by the flags above, each collective "
                        f"priced alone unless --contention): the model checked against "
                        f"measurements (docs/validation.md). simai: SimAI's analytical "
                        f"bus-bandwidth model (one alpha-beta formula per collective), for "
                        f"comparisons with SimAI (default {DEFAULT_COST_MODEL})")
    g.add_argument("--calibration", metavar="YAML",
                   help="a calibration written by 'collsim calibrate' (e.g. "
                        "traces/h200x2/calib_h200x2.yaml): measured corrections on top of the "
                        "cost model, for the placements it was fitted on")


def cluster_options(args: argparse.Namespace):
    """The cluster options on the command line (the flags of add_cluster_arguments)."""
    from ..config import ClusterOptions
    return ClusterOptions(
        gpus_per_server=getattr(args, "gpus_per_server", None),
        nvlink_bw=getattr(args, "nvlink_bw", None), nic_bw=getattr(args, "nic_bw", None),
        nics_per_server=getattr(args, "nics_per_server", None),
        base_latency_ns=getattr(args, "base_latency", None),
        topology=getattr(args, "topology", None), fabric=getattr(args, "fabric", None),
        oversubscription=getattr(args, "oversubscription", None),
        servers_per_leaf=getattr(args, "servers_per_leaf", None),
        ecmp=getattr(args, "ecmp", None))


def cost_model_options(args: argparse.Namespace):
    """The cost-model options on the command line."""
    from ..config import CostModelOptions
    return CostModelOptions(cost_model=getattr(args, "cost_model", None),
                            calibration=getattr(args, "calibration", None),
                            algorithm=getattr(args, "algorithm", None),
                            protocol=getattr(args, "protocol", None))


def scenario_options(args: argparse.Namespace):
    """The what-ifs that make ranks differ, as typed options (the spec texts as written)."""
    from ..config import ScenarioOptions
    return ScenarioOptions(
        stragglers=tuple(getattr(args, "straggler", None) or ()),
        jitter=getattr(args, "jitter", None),
        degrades=tuple(getattr(args, "degrade", None) or ()),
        failure=getattr(args, "fail", None),
        co_jobs=tuple(getattr(args, "co_job", None) or ()),
        placement=getattr(args, "placement", None), draws=getattr(args, "draws", 1),
        sensitivity=getattr(args, "sensitivity", False),
        contention=getattr(args, "contention", None))


def build_cost_model(args: argparse.Namespace):
    """(cluster, cost model) from the command line: the flags as typed options, built by the
    cost-model registry (the one place commands and sweeps get them from)."""
    from ..costmodel.registry import build_cost_model as build
    return build(cluster_options(args), cost_model_options(args))


def _gpu_key(name: str) -> str:
    """``A100 SXM4 80GB`` (or ``a100-40gb``) -> ``a100``: the GPU model without its form
    factor and memory."""
    return name.strip().lower().split()[0].split("-")[0] if name.strip() else ""


def build_cost_model_for(args: argparse.Namespace, gpu: str | None, source: str = ""):
    """(cluster, cost model, how the cluster was chosen or None) for a workload generated for
    ``gpu`` (its sidecar's ``gpu``; ``source`` names the sidecar). With no cluster option on
    the command line the cluster is that GPU's preset (an A100 table on DGX A100, not on the
    default H100 one), and cluster flags change that preset; a topology the user named that
    holds another GPU is warned about once."""
    from ..costmodel.registry import DEFAULT_PRESET, build_cost_model as build, preset_for_gpu
    from ..errors import warn

    options = cluster_options(args)
    preset = preset_for_gpu(gpu)
    if gpu and preset and not options.topology:
        # cluster flags change the table GPU's preset (an A100 table with --nic-bw keeps
        # the A100 servers' NVLink), as they change the default one for a table without GPU
        built = build(options, cost_model_options(args), preset=preset)
        changed = ", changed by the cluster flags" if options.asked() else ""
        return (*built, f"{preset}, the preset of the workload's GPU ({str(gpu).upper()}, "
                        f"from {source or 'its sidecar'}){changed}; --topology names another")
    built = build(options, cost_model_options(args))
    if gpu and (options.topology or preset):
        from ..topology import load_spec
        try:
            named = load_spec(options.topology or DEFAULT_PRESET).gpu
        except Exception:   # a bad topology was already reported by the build above
            named = ""
        if named and _gpu_key(named) != _gpu_key(str(gpu)):
            where = options.topology or f"{DEFAULT_PRESET}, changed by the cluster flags"
            warn(f"the workload was generated for {str(gpu).upper()} ({source or 'its sidecar'}"
                 f"), the cluster holds {named} ({where}): its compute times are the "
                 "workload's GPU's, its collectives the cluster's")
    return (*built, None)


def check_outputs(args: argparse.Namespace, dests: dict[str, str],
                  extra_outputs: dict[str, str] | None = None, extra_inputs=()) -> list[str]:
    """Refuse outputs that are inputs or each other (exit 2, before any work); the inputs.

    ``dests``: argparse dest -> the flag as the user wrote it, for every output option;
    ``extra_outputs``: more (what, path) a command derives. Every other file named on the
    command line is an input, so a flag added later is protected without being listed here.
    """
    import os

    from ..report.output import check_paths

    inputs: list[str] = []
    for dest, value in vars(args).items():
        if dest in dests:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if (isinstance(item, str) and item and item != "-" and len(item) < 4096
                    and os.path.exists(item) and not os.path.isdir(item)):
                inputs.append(item)
    inputs += [p for p in extra_inputs if p]
    outputs = [(flag, getattr(args, dest, None)) for dest, flag in dests.items()]
    outputs += list((extra_outputs or {}).items())
    check_paths([(flag, path) for flag, path in outputs if path], inputs)
    return inputs
