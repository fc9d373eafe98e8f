"""The kernel-gap analysis of simulator.measure.idle on hand-made timelines (no torch)."""
from simulator.measure import idle


def test_gaps_between_overlapping_and_separate_activities():
    # window 0-100 us; busy 10-30, 25-40 (overlaps: one stretch 10-40), 45-50, 90-95
    busy = [(10.0, 30.0), (25.0, 40.0), (45.0, 50.0), (90.0, 95.0)]
    # by hand: idle 0-10 (ends at activity 0), 40-45 (activity 2), 50-90 (activity 3),
    # tail 95-100 (-1); 10 + 5 + 40 + 5 = 60 us idle, 40 us busy
    assert idle.gaps(busy, 0.0, 100.0) == [(0.0, 10.0, 0), (40.0, 45.0, 2), (50.0, 90.0, 3),
                                           (95.0, 100.0, -1)]
    assert idle.busy_us(busy, 0.0, 100.0) == 40.0


def test_no_gaps_when_back_to_back():
    assert idle.gaps([(0.0, 5.0), (5.0, 9.0)], 0.0, 9.0) == []


def test_attribute_host_behind_queued_and_tail():
    phases = [(0.0, 50.0, "forward"), (50.0, 100.0, "optimizer")]
    ops = [(40.0, 48.0, "aten::addmm"), (60.0, 90.0, "aten::item"),
           (61.0, 70.0, "aten::_local_scalar_dense")]
    # launched at 45 into a gap that began at 42: the device waited for the host (forward)
    assert idle.attribute(42.0, 45.0, phases, ops) == ("forward", "aten::addmm", "host")
    # launched at 45, before the gap began at 47: the device's own turnaround
    assert idle.attribute(47.0, 45.0, phases, ops) == ("forward", "aten::addmm", "queued")
    # innermost op: 65 lies in item (30 us) and _local_scalar_dense (9 us) -> the shorter
    assert idle.attribute(62.0, 65.0, phases, ops) == ("optimizer", "aten::_local_scalar_dense",
                                                       "host")
    # no next activity: the tail up to the step's sync
    assert idle.attribute(80.0, None, phases, ops) == ("step_end", "aten::item", "host")


def test_summarize_one_step_trace():
    # one 100 us step: kernel A 10-40 (launched 5), kernel B 42-60 (launched 30, in time),
    # kernel C 80-90 (launched 78 in the optimizer: host behind); by hand: gaps 0-10 (step
    # start; A launched at 5, after the gap began at 0: host), 40-42 queued (B launched at
    # 30 < 40; 2 us), 60-80 host (20 us, optimizer), tail 90-100 (10 us);
    # idle 10 + 2 + 20 + 10 = 42, kernels 30 + 18 + 10 = 58
    ev = [{"ph": "X", "cat": "user_annotation", "name": "idle_step", "ts": 0, "dur": 100},
          {"ph": "X", "cat": "user_annotation", "name": "forward", "ts": 1, "dur": 40},
          {"ph": "X", "cat": "user_annotation", "name": "optimizer", "ts": 70, "dur": 20}]
    for name, ts, dur, corr, launch in (("A", 10, 30, 1, 5), ("B", 42, 18, 2, 30),
                                        ("C", 80, 10, 3, 78)):
        ev.append({"ph": "X", "cat": "kernel", "name": name, "ts": ts, "dur": dur,
                   "args": {"correlation": corr}})
        ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": launch,
                   "dur": 1, "args": {"correlation": corr}})
    steps, phases, big = idle.summarize("c", {"traceEvents": ev}, 1)
    assert steps == [{"case": "c", "step": 0, "wall_us": 100.0, "kernel_sum_us": 58.0,
                      "busy_us": 58.0, "idle_us": 42.0, "activities": 3, "gaps": 4}]
    got = {(p["phase"], p["kind"]): p["us_per_step"] for p in phases}
    assert got == {("step_start:forward", "host"): 10.0, ("forward", "queued"): 2.0,
                   ("optimizer", "host"): 20.0, ("step_end", "host"): 10.0}
    assert [(g["us"], g["next"]) for g in big] == [(20.0, "C")]
