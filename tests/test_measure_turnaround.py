"""The CUPTI kernel list of simulator.measure.turnaround from a hand-made Chrome trace (no
torch: the profiler object only needs ``export_chrome_trace``)."""
import json

from simulator.measure import turnaround


class _FakeProfile:
    def __init__(self, events):
        self.events = events

    def export_chrome_trace(self, path):
        with open(path, "w") as fh:
            json.dump({"traceEvents": self.events}, fh)


def test_kernels_sorted_by_start_and_only_kernels(tmp_path):
    ev = [{"ph": "X", "cat": "kernel", "name": "b", "ts": 30, "dur": 4},
          {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 1, "dur": 3},
          {"ph": "X", "cat": "kernel", "name": "a", "ts": 10, "dur": 7.5},
          {"ph": "i", "cat": "kernel", "name": "marker", "ts": 12}]
    ks = turnaround._cupti_kernels(_FakeProfile(ev), str(tmp_path))
    # the two complete kernel events, by start; the runtime call and the instant dropped
    assert ks == [(10.0, 7.5), (30.0, 4.0)]
    assert not (tmp_path / "trace.json").exists()   # the export is removed after reading
