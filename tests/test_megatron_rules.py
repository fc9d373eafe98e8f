"""How a generated Megatron workload is simulated (issue 12): the cluster of its GPU, the
tied-embedding all-reduce, blocking pipeline sends, Megatron's optimizer default. Expected
values derived by hand (derivation beside each)."""
from __future__ import annotations

import json
import warnings

import pytest

from simulator.cli import main

# a small GPT (2 layers, h 256) the generator writes in a blink
SMALL = ["--model", "gpt-7b", "--num-layers", "2", "--hidden-size", "256",
         "--num-attention-heads", "4", "--vocab-size", "1024", "--seq-length", "128",
         "--quiet"]


def generated(tmp_path, *args, name="w.txt"):
    out = tmp_path / name
    assert main(["generate", *SMALL, "-o", str(out), *args]) == 0
    return out


def simulated(path, tmp_path, *args):
    js = tmp_path / "s.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["simulate", str(path), "--json", str(js), *args]) == 0
    return json.loads(js.read_text()), [str(w.message) for w in caught]


@pytest.mark.parametrize("gpu, preset, nvlink, nic", [
    # the presets' own figures (topologies/*.yaml): DGX A100 300 GB/s NVLink, 200 Gbit/s =
    # 25 GB/s NICs; HGX H200 478 GB/s, 400 Gbit/s = 50 GB/s; H800 200 GB/s, 50 GB/s RoCE
    ("a100", "dgx-a100", 300, 25), ("h200", "hgx-h200", 478, 50),
    ("h800", "h800-roce", 200, 50), ("h100", "dgx-h100", 450, 50)])
def test_a_generated_table_is_simulated_on_its_gpus_preset(tmp_path, capsys, gpu, preset,
                                                           nvlink, nic):
    w = generated(tmp_path, "--gpus", "16", "--gpu", gpu)
    doc, caught = simulated(w, tmp_path)
    cm = doc["cost_model"]
    assert (cm["topology"], cm["scale_up_GB_per_s"], cm["nic_GB_per_s"]) == (preset, nvlink, nic)
    assert cm["cluster_chosen"].startswith(f"{preset}, the preset of the workload's GPU "
                                           f"({gpu.upper()}")
    assert f"             on {preset}, the preset" in capsys.readouterr().out
    assert not [m for m in caught if "generated for" in m]


def test_a_cluster_the_user_names_is_kept_and_another_gpu_warned_about(tmp_path):
    w = generated(tmp_path, "--gpus", "16", "--gpu", "a100")
    # a cluster flag: the default preset (DGX H100) changed by it, no automatic choice
    doc, caught = simulated(w, tmp_path, "--nic-bw", "200Gbit/s")
    assert doc["cost_model"]["topology"] == "dgx-h100"
    assert "cluster_chosen" not in doc["cost_model"]
    assert len([m for m in caught if "generated for A100" in m and "H100" in m]) == 1
    # a topology of the table's GPU: no warning
    doc, caught = simulated(w, tmp_path, "--topology", "dgx-a100")
    assert doc["cost_model"]["topology"] == "dgx-a100"
    assert not [m for m in caught if "generated for" in m]
    # another GPU's topology: one warning
    doc, caught = simulated(w, tmp_path, "--topology", "h800-roce")
    assert len([m for m in caught if "generated for A100" in m and "H800" in m]) == 1


def test_a_table_without_sidecar_keeps_the_default_cluster(tmp_path):
    w = generated(tmp_path, "--gpus", "16", "--gpu", "a100")
    (tmp_path / "w.txt.meta.json").unlink()
    doc, _ = simulated(w, tmp_path)
    assert doc["cost_model"]["topology"] == "dgx-h100"
    assert "cluster_chosen" not in doc["cost_model"]
