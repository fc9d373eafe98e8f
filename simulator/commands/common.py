"""Command-line options shared by the commands that build a cluster and a cost model.

The flags themselves (argparse) are in :mod:`.arguments`; this module maps a parsed command
line to typed options and imports no argparse (a quick ``collsim simulate`` line never
loads it).
"""
from __future__ import annotations

from ..units import implausible_bandwidth

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    import argparse

#: the largest count any flag takes: the workload reader's largest world (2^22 GPUs)
MAX_COUNT = 1 << 22


def bandwidth_flag_warnings(flag: str, text: str, gbps: float, part: str,
                            new_name: str | None) -> list[str]:
    """What a bandwidth flag ``flag TEXT`` (read as ``gbps``) warns about: an old spelling
    (``new_name`` is the current one), a bare number more than ``part`` carries."""
    messages = []
    if new_name:
        messages.append(f"{flag} is deprecated and will be removed: use {new_name} (the same "
                        f"value: a bare number is GB/s; 'gbps' reads as gigabits, so write a "
                        f"unit, e.g. 400Gbit/s or 50GB/s)")
    message = implausible_bandwidth(text, gbps, part, flag)
    if message:
        messages.append(message)
    return messages


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
    for flag, path in outputs:
        if path == "":   # `--json=` or `--json ""`: a typo that would otherwise write nothing
            from ..errors import InputError
            raise InputError("an empty path; name a file (or - where standard output is meant)",
                             field=flag)
    named = [(flag, path) for flag, path in outputs if path]
    if named:   # (no output named: nothing to check, and the writer's module not loaded)
        from ..report.output import check_paths
        check_paths(named, inputs)
    return inputs
