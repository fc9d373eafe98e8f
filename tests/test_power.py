"""The power-cap model (simulator/generate/power.py): hand-derived cases."""
import math

import pytest

from simulator.generate.power import COMPUTE, IDLE, MEMORY, PowerCap, step_factor, stretch, \
    timeline

# cap 700 W, idle 100 W, memory-bound 400 W, a tensor-core kernel 900 W at the boost clock,
# gain 0.5, time constant 30 ms
CAP = PowerCap(cap_w=700.0, idle_w=100.0, mem_w=400.0, compute_w=900.0, gain=0.5, tau_ms=30.0)


def test_long_stretch_reaches_the_steady_slowdown():
    # repeated back to back, the filter starts at the GEMM's own 900 W: 1 + 0.5 x 200 / 700
    assert step_factor(CAP, [(10e6, COMPUTE)]) == pytest.approx(1 + 0.5 * 200 / 700, rel=1e-9)


def test_short_burst_after_idle_runs_at_boost():
    # from idle (100 W) a 3 ms burst lifts the filter to 900 - 800 exp(-0.1) = 176 W < 700
    busy, extra, p = stretch(CAP, [(3000.0, COMPUTE)])
    assert busy == pytest.approx(3000.0)
    assert extra == 0.0
    assert p == pytest.approx(900 - 800 * math.exp(-0.1), rel=1e-9)


def test_burst_crosses_the_cap_after_tau_ln4():
    # 900 - 800 exp(-t / 30 ms) passes 700 W at t = 30 ln 4 = 41.6 ms: a 40 ms burst from idle
    # stays at boost, an 80 ms one does not
    assert stretch(CAP, [(40e3, COMPUTE)])[1] == 0.0
    assert stretch(CAP, [(80e3, COMPUTE)])[1] > 0.0


def test_fine_duty_cycle_follows_the_mean_demand():
    # 1 ms periods (much shorter than 30 ms): the filter holds the mean, 100 + 800 d W with
    # idle gaps: no slowdown up to d = 0.75; at d = 0.9, 820 W: 1 + 0.5 x 120 / 700
    def pattern(d):
        return [(1000.0 * d, COMPUTE), (1000.0 * (1 - d), IDLE)] * 2000
    assert step_factor(CAP, pattern(0.5)) == 1.0
    assert step_factor(CAP, pattern(0.9)) == pytest.approx(1 + 0.5 * 120 / 700, rel=0.01)
    assert CAP.steady_slowdown(0.9) == pytest.approx(1 + 0.5 * 120 / 700, rel=1e-9)
    # memory-bound gaps draw more than idle ones: 900 d + 400 (1 - d) passes 700 at d = 0.6
    assert CAP.steady_slowdown(0.6, 0.4) == pytest.approx(1.0)
    assert CAP.steady_slowdown(0.8, 0.2) == pytest.approx(1 + 0.5 * 100 / 700, rel=1e-9)


def test_monotonic_in_duty():
    factors = [step_factor(CAP, [(2000.0 * d, COMPUTE), (2000.0 * (1 - d), MEMORY)] * 500)
               for d in (0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0)]
    assert factors == sorted(factors)
    assert factors[0] == 1.0 and factors[-1] > factors[-2]


def test_timeline_follows_the_host_replay():
    # a GEMM (10 us, issued at 0), a copy issued at host 20 us (the GPU idles 10 -> 20),
    # a sync (the host waits to 25, spends 3: idle 25 -> 28), a copy issued at 29
    segs, issued, gpu = timeline([(10.0, 0.0, "c"), (5.0, 20.0), (0.0, 3.0, True),
                                  (4.0, 1.0)])
    assert segs == [(10.0, COMPUTE), (10.0, IDLE), (5.0, MEMORY), (3.0, IDLE), (1.0, IDLE),
                    (4.0, MEMORY)]
    assert (issued, gpu) == (29.0, 33.0)


def _model(layers, hidden, mbs, recompute, power_cap=True):
    from dataclasses import replace

    from simulator.generate.compute import ComputeModel
    from simulator.generate.sizes import megatron_params
    from simulator.validation.h200_train import config_for
    cfg = config_for(dict(layers=layers, hidden=hidden, ffn=4 * hidden, heads=hidden // 64 if hidden < 1000 else 32,
                          vocab=50257, mbs=mbs, ga=1, seq=2048, recompute=recompute))
    cfg = replace(cfg, features=replace(cfg.features, power_cap=power_cap))
    return ComputeModel(cfg, megatron_params(cfg))


def test_fitted_h200_cap_in_a_step():
    from simulator.generate.h200_power_fit import H200_POWER_CAP as c
    # the GEMM-only steady factor bounds any step's: 1 + 0.2224 x 640.3 / 700 = 1.2034
    top = 1 + c.gain * (c.compute_w - c.cap_w) / c.cap_w
    assert top == pytest.approx(1.2034, abs=1e-4)
    big = _model(32, 2560, 8, 1)
    assert 1.05 < big.power_factor < top
    # a host-bound step never sustains the cap: it falls out of its own timeline
    assert _model(12, 768, 1, 0).power_factor == 1.0
    # off: every kernel at the boost clock
    assert _model(32, 2560, 8, 1, power_cap=False).power_factor == 1.0
