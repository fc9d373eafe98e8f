"""The typed configuration layer (simulator/config): one loader, one key -> flag table,
library errors that name the key a user wrote, the cost-model registry."""
from __future__ import annotations

import argparse
import ast
from dataclasses import fields
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.config import (ClusterOptions, CostModelOptions, GenerateOptions,
                              ScenarioOptions, SweepPoint, from_mapping, load_options)
from simulator.config.flags import FLAGS, flag_for, for_cli
from simulator.costmodel.registry import COST_MODELS, build_cost_model, cost_model_name
from simulator.errors import InputError
from simulator.sweep.runner import run_point
from simulator.sweep.spec import KEYS, load_spec

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str, name: str = "s.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# ------------------------------------------------------------------ the loader, sweep specs

def test_sweep_bad_tp_names_the_key_and_its_line(tmp_path):
    # line 1 base:, 2 model, 3 gpus, 4 grid:, 5 tp: [2, 0]
    path = write(tmp_path, "base:\n  model: gpt-7b\n  gpus: 8\ngrid:\n  tp: [2, 0]\n")
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert (err.value.path, err.value.line, err.value.field) == (path, 5, "grid.tp")
    assert str(err.value) == (f"{path}:5: grid.tp: must be between 1 and 2,147,483,648 (as on "
                              "the command line), got 0")
    assert "--" not in str(err.value)


def test_sweep_key_typo_is_refused_naming_the_key(tmp_path):
    path = write(tmp_path, "base:\n  model: gpt-7b\n  gpus: 8\n  nic_bww: 50\n")
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert (err.value.line, err.value.field) == (4, "base.nic_bww")
    assert "unknown key 'nic_bww' (did you mean 'nic_bw'?)" in err.value.message


def test_infeasible_sweep_point_names_keys_not_flags():
    # 8 GPUs with TP 3: 8 % 3 != 0; the spec wrote gpus: and tp:, the error says gpus:
    res = run_point({"model": "gpt-7b", "gpus": 8, "tp": 3, "global_batch": 8})
    assert res["status"] == "infeasible"
    assert res["error"] == "gpus: 8 GPUs are not divisible by TP x PP = 3 x 1"
    # EP 3 on mixtral with DP 8: "ep", as written
    res = run_point({"model": "mixtral-8x7b", "gpus": 8, "tp": 1, "ep": 3})
    assert res["status"] == "infeasible" and res["error"].startswith("ep: ")


def test_cli_user_sees_the_flag_for_the_same_error(capsys, tmp_path):
    rc = main(["generate", "--model", "gpt-7b", "--world-size", "8", "--tp", "3",
               "-o", str(tmp_path / "x.txt")])
    err = capsys.readouterr().err
    assert rc == 2
    # generate spells the world size --world-size (COMMAND_FLAGS), not --gpus
    assert err == "collsim: error: --world-size: 8 GPUs are not divisible by TP x PP = 3 x 1\n"
    rc = main(["simulate", "--topology", "h200x2", "--nic-bw", "50",
               str(ROOT / "workloads" / "seed004_moe_tp8_ep4_pp4_128gpus.txt")])
    assert rc == 2 and "--nic-bw: topology h200x2 has no NICs" in capsys.readouterr().err


def test_from_mapping_units_and_errors():
    # 400 Gbit/s = 50 GB/s; 10us = 10,000 ns
    opts = from_mapping(ClusterOptions, {"nic_bw": "400Gbit/s", "base_latency_ns": "10us",
                                         "fabric": "fat-tree"})
    assert opts == ClusterOptions(nic_bw=50.0, base_latency_ns=10_000, fabric="fat-tree")
    with pytest.raises(InputError) as err:
        from_mapping(ClusterOptions, {"fabric": "torus"}, path="c.yaml",
                     lines={"fabric": 7})
    assert str(err.value).startswith("c.yaml:7: fabric: unknown fabric 'torus'")
    with pytest.raises(InputError, match=r"^cost_model: unknown cost model 'ns3'; known: "
                                         r"nccl, simai$"):
        from_mapping(CostModelOptions, {"cost_model": "ns3"})
    with pytest.raises(InputError, match="^sp: expected true or false, got 'yes please'"):
        from_mapping(GenerateOptions, {"sp": "yes please"})


def test_load_options_from_a_yaml_section(tmp_path):
    path = write(tmp_path, "name: x\ncluster:\n  nvlink_bw: 900GB/s\n  nics_per_server: 4\n"
                           "  gpus_per_sever: 4\n")
    with pytest.raises(InputError) as err:
        load_options(ClusterOptions, path, section="cluster")
    assert (err.value.line, err.value.field) == (5, "cluster.gpus_per_sever")
    assert "did you mean 'gpus_per_server'" in str(err.value)
    path = write(tmp_path, "cluster:\n  nvlink_bw: 900GB/s\n  nics_per_server: 4\n")
    assert load_options(ClusterOptions, path, section="cluster") == ClusterOptions(
        nvlink_bw=900.0, nics_per_server=4)


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    import importlib
    module = importlib.import_module(f"simulator.commands.{command}")
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def test_cli_and_yaml_build_equal_options(tmp_path):
    from simulator.commands.common import cluster_options, cost_model_options
    from simulator.commands.generate import generate_options

    args = _parse("simulate", ["w.txt", "--nic-bw", "200Gbit/s", "--nvlink-bw", "900",
                               "--base-latency", "5us", "--topology", "dgx-h100",
                               "--fabric", "fat-tree", "--cost-model", "nccl"])
    yaml_path = write(tmp_path, "nic_bw: 25GB/s\nnvlink_bw: 900\nbase_latency_ns: 5000ns\n"
                                "topology: dgx-h100\nfabric: fat-tree\n", "c.yaml")
    assert cluster_options(args) == load_options(ClusterOptions, yaml_path)
    assert cost_model_options(args) == CostModelOptions(cost_model="nccl")

    args = _parse("generate", ["--model", "mixtral-8x7b", "--world-size", "64", "--tp", "2",
                               "--ep", "8", "--cp", "2", "--fp8-format", "hybrid",
                               "--no-distributed-optimizer", "-o", "x.txt"])
    spec = write(tmp_path, "base: {model: mixtral-8x7b, world_size: 64, tp: 2, ep: 8, cp: 2,"
                           " fp8: hybrid, distributed_optimizer: false}\n")
    point = SweepPoint.from_point(load_spec(spec).points[0])
    assert generate_options(args) == point.generate_options()


def test_sweep_point_builds_the_cluster_options(tmp_path):
    p = SweepPoint(model="gpt-7b", gpus=8, base_latency_us=2.5, nic_bw=25.0,
                   topology="mine.yaml", calibration="cal.yaml", cost_model="nccl")
    assert p.cluster_options(str(tmp_path)) == ClusterOptions(
        nic_bw=25.0, base_latency_ns=2500, topology=str(tmp_path / "mine.yaml"))
    assert p.cost_model_options(str(tmp_path)) == CostModelOptions(
        cost_model="nccl", calibration=str(tmp_path / "cal.yaml"))


# ------------------------------------------------------------------------ the schema

@pytest.mark.parametrize("cls", [ClusterOptions, CostModelOptions, GenerateOptions,
                                 ScenarioOptions, SweepPoint])
def test_every_option_says_what_it_is(cls):
    for f in fields(cls):
        assert f.metadata["help"], f.name
        assert f.metadata["kind"].rstrip("?") in ("int", "float", "bool", "str", "strs", "bw",
                                                  "latency"), f.name
        if f.metadata["kind"].startswith("bw"):
            assert f.metadata["unit"] == "GB/s" and not f.name.endswith("gbps")
    from dataclasses import FrozenInstanceError
    with pytest.raises(FrozenInstanceError):
        setattr(cls(), fields(cls)[0].name, 1)


def test_sweep_keys_are_the_sweep_point_fields():
    assert list(KEYS) == [f.name for f in fields(SweepPoint)]
    assert KEYS["tp"] == ("int?", None) and KEYS["seq_length"] == ("int", 4096)
    assert KEYS["nic_bw"] == ("bw?", None)


def test_one_flag_table():
    assert flag_for("nic_bw") == "--nic-bw" and flag_for("gpus", "generate") == "--world-size"
    assert flag_for("gpus") == "--gpus" and flag_for("scale_up.bandwidth") == "scale_up.bandwidth"
    # a file's error keeps the key written in that file; a library error gets the flag
    in_file = InputError("bad", path="t.yaml", line=3, field="nic_bw")
    assert for_cli(in_file) is in_file
    assert str(for_cli(InputError("bad", field="fp8"))) == "--fp8-format: bad"
    assert all(flag.startswith("--") for flag in FLAGS.values())


# -------------------------------------------------------------------- the registry

def test_registry_builds_each_model():
    assert set(COST_MODELS) == {"nccl", "simai"}
    # simai on the default cluster with 200 Gbit/s NICs: 25 GB/s, named 8 x 200g
    cluster, model = build_cost_model(ClusterOptions(nic_bw=25.0),
                                      CostModelOptions(cost_model="simai"))
    assert (cluster.name, cluster.nic_gbps, type(model).__name__) == (
        "h100-8x200g", 25.0, "AnalyticalCostModel")
    # a topology without a cost model asked: nccl; dgx-h100 has 8 GPUs per server
    cluster, model = build_cost_model(ClusterOptions(topology="dgx-h100"))
    assert cost_model_name(ClusterOptions(topology="dgx-h100"), CostModelOptions()) == "nccl"
    assert (cluster.gpus_per_server, type(model).__name__) == (8, "NcclCostModel")
    assert model.shares_links_by_default    # a topology the user named shares its links
    # no model asked, no topology: nccl (the default) on the implied preset, links not shared
    assert cost_model_name(ClusterOptions(), CostModelOptions()) == "nccl"
    cluster, model = build_cost_model()
    assert (cluster.gpus_per_server, type(model).__name__) == (8, "NcclCostModel")
    assert not model.shares_links_by_default
    with pytest.raises(InputError, match="^fabric: SimAI's busbw model has no fabric"):
        build_cost_model(ClusterOptions(fabric="fat-tree"), CostModelOptions("simai"))
    with pytest.raises(InputError, match="^gpus_per_server: topology dgx-h100 has 8 GPUs"):
        build_cost_model(ClusterOptions(topology="dgx-h100", gpus_per_server=4))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_library_never_sees_argparse_and_topology_never_imports_costmodel():
    pkg = ROOT / "simulator"
    for rel in ("topology/overrides.py", "checks.py", "sweep/runner.py", "sweep/spec.py",
                "costmodel/registry.py", "config/loader.py", "scenario.py"):
        assert "argparse" not in _imports(pkg / rel), rel
    for path in (pkg / "topology").glob("*.py"):
        assert not any("costmodel" in name for name in _imports(path)), path.name
    assert not any("commands" in name for name in _imports(pkg / "sweep" / "runner.py"))


def test_scenario_errors_name_the_key_and_the_cli_the_flag(capsys):
    from simulator.commands.common import scenario_options
    from simulator.scenario import parse_degrade, parse_failure, parse_jitter, parse_straggler

    for parse, text, key in ((parse_straggler, "rank=x,compute=2", "stragglers"),
                             (parse_degrade, "server=1", "degrades"),
                             (parse_failure, "restart=1s", "failure"),
                             (parse_jitter, "cv=0", "jitter")):
        with pytest.raises(InputError) as err:
            parse(text)
        assert err.value.field == key, text
    rc = main(["simulate", str(ROOT / "workloads" / "seed004_moe_tp8_ep4_pp4_128gpus.txt"),
               "--straggler", "rank=200,compute=2", "--quiet"])
    err = capsys.readouterr().err
    # seed 004 has 128 ranks: rank 200 is outside them
    assert rc == 2 and "collsim: error: --straggler: rank 200 is outside the job's 128 ranks" in err
    args = _parse("simulate", ["w.txt", "--straggler", "rank=3,compute=1.5", "--straggler",
                               "ranks=0-7,compute=1.1", "--jitter", "cv=0.05", "--draws", "4"])
    assert scenario_options(args) == from_mapping(ScenarioOptions, {
        "stragglers": ["rank=3,compute=1.5", "ranks=0-7,compute=1.1"], "jitter": "cv=0.05",
        "draws": 4})
    with pytest.raises(InputError, match="^degrades: expected a list of texts, got"):
        from_mapping(ScenarioOptions, {"degrades": [3]})
