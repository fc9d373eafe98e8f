"""The argparse side of the shared command-line options: value types, the bandwidth action
and the cluster flags.

Kept apart from :mod:`.common` (the options they map to, without argparse) so that a
``collsim simulate`` line the quick reader (:mod:`.simulate_args`) reads whole imports
neither argparse nor this module.
"""
from __future__ import annotations

import argparse

from ..cluster import Cluster
from ..costmodel.registry import COST_MODELS, DEFAULT_COST_MODEL, DEFAULT_PRESET
from ..units import format_bandwidth, parse_bandwidth_gbps, parse_latency_ns
from .common import MAX_COUNT, bandwidth_flag_warnings


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
        for message in bandwidth_flag_warnings(option_string, values, gbps, self.part,
                                               self.new_name):
            warn(message)
        setattr(namespace, self.dest, gbps)


def latency(text: str) -> int:
    try:
        return parse_latency_ns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
