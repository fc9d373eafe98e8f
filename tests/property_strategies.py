"""Hypothesis strategies for AICB-shaped workloads and clusters, and the quiet simulate
call, shared by the property tests (test_properties*.py, test_checks.py)."""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from simulator.cluster import Cluster
from simulator.costmodel.base import CostModel
from simulator.engine import SimulationOptions, simulate
from simulator.engine.segment import segment
from simulator.workload import NO_COMM, Comm, Group, Op, Phase, Row, Workload

ROOT = Path(__file__).resolve().parent.parent
SCALE = float(os.environ.get("COLLSIM_HYPOTHESIS_SCALE", "1"))
RANDOM = os.environ.get("COLLSIM_HYPOTHESIS_RANDOM", "") not in ("", "0")


def examples(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=not RANDOM,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


# ------------------------------------------------------------------------------ strategies

BASE_OPS = ("ALLREDUCE", "ALLGATHER", "REDUCESCATTER", "ALLTOALL", "BROADCAST",
            "ALLREDUCEALLTOALL")
SUFFIXES = {"": None, "_EP": Group.EP, "_DP_EP": Group.DP_EP}
TYPE_NAMES = ["NONE"] + [op + sfx for op in BASE_OPS for sfx in SUFFIXES]


def comm_of(type_name: str, phase: Phase, size: int) -> Comm:
    """A Comm from a type word, by the table of docs/workload-format.md (not the reader)."""
    if type_name == "NONE":
        return NO_COMM
    for sfx in ("_DP_EP", "_EP", ""):
        if sfx and type_name.endswith(sfx):
            return Comm(Op[type_name[: -len(sfx)]], SUFFIXES[sfx], size)
    return Comm(Op[type_name], Group.DP if phase is Phase.WG else Group.TP, size)


compute_ns = st.one_of(st.just(0), st.just(1), st.integers(0, 2_000_000))
byte_counts = st.one_of(st.just(0), st.just(1), st.integers(1, 1 << 16),
                        st.integers(1, 1 << 30))
update_ns = st.one_of(st.just(100), st.just(0), st.integers(0, 10_000))


@st.composite
def comms(draw, phase: Phase, p_none: float = 0.35) -> Comm:
    if draw(st.floats(0, 1)) < p_none:
        return NO_COMM
    return comm_of(draw(st.sampled_from(TYPE_NAMES[1:])), phase, draw(byte_counts))


@st.composite
def rows(draw) -> Row:
    return Row(name=draw(st.sampled_from(["layer", "embedding_layer", "attention", "moe"])),
               fwd_ns=draw(compute_ns), fwd=draw(comms(Phase.FWD)),
               ig_ns=draw(compute_ns), ig=draw(comms(Phase.IG)),
               wg_ns=draw(compute_ns), wg=draw(comms(Phase.WG)),
               update_ns=draw(update_ns))


@st.composite
def layouts(draw, pp=None, tp=None, ep=None):
    tp = draw(st.sampled_from([1, 2, 4, 8])) if tp is None else tp
    pp = draw(st.sampled_from([1, 1, 2, 3, 4])) if pp is None else pp
    ep = draw(st.sampled_from([1, 2, 4])) if ep is None else ep
    dp = ep * draw(st.sampled_from([1, 2, 3]))
    return tp, pp, ep, tp * pp * dp


@st.composite
def workloads(draw, pp=None, ga=None, checkpoints=True, max_block=4, tp=None, ep=None,
              same_compute=False) -> Workload:
    """An AICB-shaped table: iteration rows, ``ga`` micro-batch copies, closing rows."""
    tp, pp, ep, world = draw(layouts(pp=pp, tp=tp, ep=ep))
    ga = draw(st.integers(1, 4)) if ga is None else ga
    prefix = draw(st.lists(rows(), max_size=2))
    block = draw(st.lists(rows(), min_size=1, max_size=max_block))
    copies = []
    for _ in range(ga):
        if same_compute or draw(st.booleans()):
            copies.extend(block)
        else:  # AICB's own example: a copy may differ in compute times only
            copies.extend(dataclasses.replace(r, fwd_ns=draw(compute_ns), wg_ns=draw(compute_ns))
                          for r in block)
    suffix = draw(st.lists(rows(), max_size=2))
    table = prefix + copies + suffix
    table = [dataclasses.replace(r, line=3 + i) for i, r in enumerate(table)]
    ckpts: tuple[int, ...] = ()
    inits: tuple[int, ...] = ()
    if checkpoints and draw(st.integers(0, 3)) == 0:
        idx = st.integers(0, len(table) - 1)
        ckpts = tuple(sorted(set(draw(st.lists(idx, min_size=1, max_size=3)))))
        inits = tuple(sorted(set(draw(st.lists(idx, min_size=1, max_size=3)))))
    return Workload(path="generated.txt", policy="HYBRID_TRANSFORMER_FWD_IN_BCKWD", tp=tp,
                    ep=ep, pp=pp, vpp=draw(st.integers(1, 3)), ga=ga, all_gpus=world,
                    checkpoints=ckpts, checkpoint_initiates=inits,
                    pp_comm_bytes=draw(st.one_of(st.just(0), byte_counts)),
                    declared_rows=len(table), rows=tuple(table))


@st.composite
def clusters(draw) -> Cluster:
    return Cluster(
        name="generated",
        gpus_per_server=draw(st.sampled_from([1, 2, 4, 8, 16])),
        nvlink_gbps=draw(st.floats(10, 2000)),
        nic_gbps=draw(st.floats(1, 200)),
        nics_per_server=draw(st.integers(1, 8)),
        nvlink_efficiency=draw(st.floats(0.05, 1)),
        nic_efficiency=draw(st.floats(0.05, 1)),
        base_latency_ns=draw(st.integers(0, 50_000)),
        nvlink_hop_ns=draw(st.integers(0, 5_000)),
        nic_hop_ns=draw(st.integers(0, 10_000)),
    )


SCHEDULES = ("1f1b", "gpipe", "interleaved")


@st.composite
def cases(draw, schedules=SCHEDULES, **kw):
    """(workload, cluster, options) that simulate: interleaved only where it applies."""
    name = draw(st.sampled_from(schedules))
    if name == "interleaved" and "ga" not in kw:
        # Megatron's interleaved order needs the micro-batches in multiples of PP
        pp = kw.pop("pp", None) or draw(st.sampled_from([1, 2, 3, 4]))
        kw.update(pp=pp, ga=pp * draw(st.integers(1, 2)), max_block=4)
    w = draw(workloads(**kw))
    c = draw(clusters())
    opts = SimulationOptions(pp_schedule=name)
    if name == "interleaved":
        seg = quiet(segment, w)
        max_chunks = min(3, len(seg.micro_batch))
        chunks = draw(st.sampled_from(range(2, max_chunks + 1))) if max_chunks > 1 else 1
        if chunks > 1 and w.pp > 1 and seg.ga % w.pp:
            chunks = 1
        opts = SimulationOptions(pp_schedule=name, vpp_chunks=chunks)
    return w, c, opts


def quiet(func, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kw)


def sim(w: Workload, c: Cluster, opts: SimulationOptions = SimulationOptions(),
        cost: CostModel | None = None):
    return quiet(simulate, w, c, cost, opts)


def describe(w: Workload, c: Cluster, opts: SimulationOptions) -> str:
    """The failing example as a workload file, for ``note`` (hypothesis prints it)."""
    return f"{opts}\n{c}\n{workload_text(w)}"


def workload_text(w: Workload) -> str:
    head = (f"{w.policy} model_parallel_NPU_group: {w.tp} ep: {w.ep} pp: {w.pp} vpp: {w.vpp} "
            f"ga: {w.ga} all_gpus: {w.all_gpus} checkpoints: {len(w.checkpoints)} "
            + "".join(f"{i} " for i in w.checkpoints)
            + f"checkpoint_initiates: {len(w.checkpoint_initiates)} "
            + "".join(f"{i} " for i in w.checkpoint_initiates)
            + f"pp_comm: {w.pp_comm_bytes}")
    lines = [head, str(len(w.rows))]
    for r in w.rows:
        lines.append("\t".join(str(x) for x in (
            r.name, -1, r.fwd_ns, r.fwd.type_name(), r.fwd.size_bytes, r.ig_ns,
            r.ig.type_name(), r.ig.size_bytes, r.wg_ns, r.wg.type_name(), r.wg.size_bytes,
            r.update_ns)))
    return "\n".join(lines) + "\n"
