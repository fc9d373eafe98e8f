"""The default cost model is nccl on the preset the flags imply; the summary says which model
priced the run and whether overlapping transfers shared links (issue 15, item 3)."""
import contextlib
import io

from repo_paths import ROOT
from simulator.cli import main

SEED004 = str(ROOT / "workloads" / "seed004_moe_tp8_ep4_pp4_128gpus.txt")


def _summary(*flags: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["simulate", SEED004, *flags]) == 0
    return {ln[:13].strip(): ln[13:] for ln in out.getvalue().splitlines()
            if ln[:13].strip() in ("cost model", "links")}


def test_default_is_nccl_each_collective_alone():
    s = _summary()
    assert s["cost model"].startswith("nccl (NCCL's algorithms") and "topology=dgx-h100" in s[
        "cost model"]
    assert s["links"].startswith("not shared") and "--contention" in s["links"]


def test_contention_and_an_explicit_topology_share_links():
    assert _summary("--contention")["links"].startswith("shared: overlapping transfers split "
                                                        "every link of the topology")
    assert _summary("--topology", "dgx-h100")["links"].startswith("shared:")
    assert _summary("--topology", "dgx-h100", "--no-contention")["links"].startswith(
        "not shared")


def test_simai_is_named_and_shares_nothing_by_default():
    s = _summary("--cost-model", "simai")
    assert s["cost model"].startswith("simai (SimAI's analytical bus-bandwidth model)")
    assert s["links"].startswith("not shared")
