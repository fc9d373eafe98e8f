"""The host-drift measurement's counters (no torch needed): each must move when the thing it
counts happens, so the device run's rows say what they claim."""
import gc
import os
import sys
import time

import pytest

from simulator.measure import hostdrift

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_columns_hold_every_counter_and_the_probes():
    for col in hostdrift.COUNTERS + ("host_ms", "wall_ms", "cpu_start", "cpu_end",
                                     "probe_py_us", "probe_torch_us", "mhz", "mode", "kind"):
        assert col in hostdrift.COLUMNS


def test_gc_clock_counts_a_full_collection():
    clock = hostdrift.GCClock()
    try:
        gc.collect()      # one collection of generation 2
        assert (clock.n, clock.gen2) == (1, 1)
        assert clock.ms > 0.0
        gc.collect(0)     # a young one: counted, not as generation 2
        assert (clock.n, clock.gen2) == (2, 1)
    finally:
        clock.remove()
    gc.collect()
    assert clock.n == 2   # removed: no longer counting


@linux
def test_counters_see_cpu_time_and_the_cpu():
    clock = hostdrift.GCClock()
    try:
        c0 = hostdrift.counters(clock)
        end = time.thread_time() + 0.05
        while time.thread_time() < end:   # 50 ms of this thread's CPU time, however busy
            pass                          # the machine is
        c1 = hostdrift.counters(clock)
    finally:
        clock.remove()
    # the process's CPU time holds the thread's; the scheduler's own account of the thread
    # (schedstat, another clock: allow 5 ms) saw it on a CPU as long
    assert c1["main_cpu_ms"] - c0["main_cpu_ms"] >= 50.0
    assert c1["proc_cpu_ms"] - c0["proc_cpu_ms"] >= 50.0
    if c0["main_run_ms"]:   # schedstat present
        assert c1["main_run_ms"] - c0["main_run_ms"] >= 45.0
    assert 0 <= hostdrift.current_cpu() < os.cpu_count()


@linux
def test_pinning_moves_the_thread():
    everyone = os.sched_getaffinity(0)
    target = max(everyone)
    try:
        os.sched_setaffinity(0, {target})
        hostdrift.probe_py(1000)
        assert hostdrift.current_cpu() == target
    finally:
        os.sched_setaffinity(0, everyone)
