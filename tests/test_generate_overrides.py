"""Model overrides on presets: derived sizes follow (issue 12, defect 2)."""
from __future__ import annotations

from simulator.cli import main
from simulator.generate import get_preset, resolve
from simulator.generate.models import with_derived_overrides
from simulator.generate.sizes import megatron_params


def test_hidden_size_override_scales_ffn_and_heads():
    m, notes = with_derived_overrides(get_preset("gpt-175b"), hidden=20480, layers=105)
    # GPT's MLP is 4 x hidden: 4 x 20480 = 81920; head dimension 12288 / 96 = 128 kept:
    # 20480 / 128 = 160 heads
    assert (m.hidden, m.ffn, m.heads, m.layers) == (20480, 81920, 160, 105)
    assert any("49152 -> 81920" in n for n in notes)
    assert any("96 -> 160 attention heads" in n for n in notes)


def test_explicit_sizes_win_and_nothing_is_derived_without_a_new_hidden():
    m, notes = with_derived_overrides(get_preset("gpt-175b"), hidden=20480, ffn=50000,
                                      heads=128)
    assert (m.ffn, m.heads) == (50000, 128) and notes == []
    m, notes = with_derived_overrides(get_preset("gpt-175b"), layers=10)
    assert (m.hidden, m.ffn, m.layers) == (12288, 49152, 10) and notes == []


def test_the_530b_model_is_530b():
    # 105 layers of hidden 20480, 128 heads, FFN 4h: per layer 4h^2 (attention) + 8h^2 (MLP)
    # + 2h (norms) = 12 x 20480^2 + 40960 = 5,033,205,760, x 105 = 528,486,604,800; tied
    # embedding of the vocabulary padded to 128 x TP 8 = 1024: 51200 x 20480 = 1,048,576,000;
    # 4096 learned positions x 20480 = 83,886,080; final norm 20480.
    m, _ = with_derived_overrides(get_preset("gpt-175b"), hidden=20480, layers=105, heads=128)
    cfg = resolve(m, 280, tp=8, pp=35, global_batch=280, seq_length=2048, distributed_optimizer=True)
    assert megatron_params(cfg).total_model == 529_619_087_360


def test_llama_gqa_keeps_its_groups(capsys, tmp_path):
    # Llama-3-8B: FFN 14336 = 3.5 x 4096 -> 3.5 x 5120 = 17920; head dim 128 -> 40 heads,
    # divisible by its 8 query groups
    rc = main(["generate", "--model", "llama-3-8b", "--hidden-size", "5120", "--world-size", "8",
               "--tp", "8", "-o", str(tmp_path / "w.txt")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "14336 -> 17920" in out and "32 -> 40 attention heads" in out


def test_yaml_preset_with_a_new_hidden_size_derives_and_warns(tmp_path):
    import pytest

    from simulator.errors import SimulationWarning
    from simulator.generate import load_model_yaml

    f = tmp_path / "m.yaml"
    f.write_text("preset: gpt-175b\nhidden: 20480\nlayers: 105\n")
    with pytest.warns(SimulationWarning, match="49152 -> 81920 \\(ffn sets it\\)"):
        m = load_model_yaml(str(f))
    assert (m.ffn, m.heads) == (81920, 160)
    f.write_text("preset: gpt-175b\nhidden: 20480\nffn: 50000\nheads: 128\n")
    assert (load_model_yaml(str(f)).ffn, load_model_yaml(str(f)).heads) == (50000, 128)
