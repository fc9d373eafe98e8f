"""Properties of the what-ifs that make ranks differ (hypothesis, bounded examples).

The detailed engine is a max-plus system too: a rank that computes more slowly, or a NIC
with less bandwidth or more latency, can only delay events. And with every rank alike it
must agree with the fast engine (checked on real files in test_ranks_differ.py; here on
generated tables with stragglers of factor 1, which must change nothing).
"""
from hypothesis import given
from hypothesis import strategies as st

from simulator.engine import SimulationOptions
from property_strategies import cases, examples, sim


def _opts(opts: SimulationOptions, **kw) -> SimulationOptions:
    return SimulationOptions(pp_schedule=opts.pp_schedule, vpp_chunks=opts.vpp_chunks, **kw)


@examples(40)
@given(cases(), st.data())
def test_a_slower_rank_never_speeds_up_the_iteration(case, data):
    w, c, opts = case
    rank = data.draw(st.integers(0, w.all_gpus - 1))
    factor = data.draw(st.floats(1.0, 3.0))
    base = sim(w, c, opts)
    slow = sim(w, c, _opts(opts, stragglers=((rank, factor),)))
    assert slow.iteration_ns >= base.iteration_ns
    # every class's parts still add up to its end
    for s in slow.stages:
        assert s.parts_sum_ns() == s.end_ns and s.end_ns + s.idle_after_ns == slow.iteration_ns


@examples(30)
@given(cases(), st.data())
def test_factor_one_changes_nothing(case, data):
    w, c, opts = case
    rank = data.draw(st.integers(0, w.all_gpus - 1))
    assert sim(w, c, _opts(opts, stragglers=((rank, 1.0),))).iteration_ns == \
        sim(w, c, opts).iteration_ns


@examples(40)
@given(cases(), st.data())
def test_a_degraded_nic_never_speeds_up_the_iteration(case, data):
    w, c, opts = case
    rank = data.draw(st.integers(0, w.all_gpus - 1))
    factor = data.draw(st.floats(0.05, 1.0))
    extra = data.draw(st.integers(0, 20_000))
    base = sim(w, c, opts)
    worse = sim(w, c, _opts(opts, degraded=((rank, factor, extra),)))
    assert worse.iteration_ns >= base.iteration_ns
