"""One GPU under sustained load: how kernel times stretch as the GPU runs into its power cap.

    python -m simulator.measure.powercap --out DIR              # a GPU (cuda:0)
    python -m simulator.measure.powercap --out DIR --device cpu --tiny   # a dry run

Phases (``--phases``, in this order), each after the GPU sat idle (host asleep, nothing
queued) for ``--idle-s``:

* ``ramp``: one kernel back to back for seconds, timed in windows of about 1 ms between CUDA
  events (``windows.csv``): the forward GEMMs 4096 x 16384 x 4096 (bf16 and fp16),
  8192 x 10240 x 2560, 4096 x 4096 x 4096 and 2048 x 2560 x 2560, causal flash attention
  and a 256 MiB copy (memory-bound).
* ``burst``: the large GEMM for 3, 30 and 300 ms (the same windows): a short burst's time.
* ``duty``: periods of ``P`` ms, a stretch of 4096^3 GEMMs for a share ``d`` of it, then a
  gap, for ``--duty-s`` seconds (``periods.csv``, one row per period or per group of periods
  covering >= 10 ms): gaps idle (the host waits for the GPU, sleeps, then issues the next
  stretch: the GPU has nothing queued) or memory-bound (copies), P 2 / 20 / 200 ms,
  d 0.2-0.9.

NVML is sampled every ``--sample-ms`` on a thread while a phase runs (``clocks.csv``: SM
clock, memory clock, averaged and instantaneous power, temperature, clock-event reasons).
Torch is imported inside functions only.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from .runstart import finish, parser, start_run
from .runstart import log as _log
from .train import write_csv

WINDOW_COLUMNS = ["phase", "case", "dtype", "t_ms", "calls", "dev_us", "per_call_us"]
PERIOD_COLUMNS = ["case", "gap", "period_ms", "duty_set", "t_ms", "periods", "gemms",
                  "gemm_us", "gap_us", "per_gemm_us"]
CLOCK_COLUMNS = ["label", "t_s", "sm_mhz", "mem_mhz", "power_w", "power_instant_w", "temp_c",
                 "reasons"]
NVML_FI_DEV_POWER_INSTANT = 186   # nvml.h: instantaneous power (mW), newer drivers


class Sampler:
    """NVML every ``period_s`` on a thread while ``label`` is set (rows for clocks.csv)."""

    def __init__(self, period_s: float):
        self.rows: list[dict] = []
        self.period_s, self.label, self.t0 = period_s, "", time.monotonic()
        self._stop = threading.Event()
        self.nv: Any = None
        self.info: list[str] = []
        try:
            import pynvml  # type: ignore[import-not-found]  # nvidia-ml-py, GPU machines only
            pynvml.nvmlInit()
            self.nv, self.h = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
            self._describe()
        except Exception as e:  # noqa: BLE001 - no NVML (CPU dry run): no samples
            self.info.append(f"nvml unavailable: {e}")
            self.nv = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _describe(self) -> None:
        n, h = self.nv, self.h
        for name, f in (("driver", lambda: n.nvmlSystemGetDriverVersion()),
                        ("name", lambda: n.nvmlDeviceGetName(h)),
                        ("power_limit_mw", lambda: n.nvmlDeviceGetPowerManagementLimit(h)),
                        ("enforced_power_limit_mw", lambda: n.nvmlDeviceGetEnforcedPowerLimit(h)),
                        ("default_power_limit_mw",
                         lambda: n.nvmlDeviceGetPowerManagementDefaultLimit(h)),
                        ("max_sm_mhz", lambda: n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_SM)),
                        ("max_mem_mhz",
                         lambda: n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_MEM)),
                        ("app_sm_mhz",
                         lambda: n.nvmlDeviceGetApplicationsClock(h, n.NVML_CLOCK_SM)),
                        ("instant_power_mw", self._instant_mw)):
            try:
                self.info.append(f"{name} {f()}")
            except Exception as e:  # noqa: BLE001 - report what this driver lacks
                self.info.append(f"{name} unavailable: {e}")

    def _instant_mw(self):
        n = self.nv
        v = n.nvmlDeviceGetFieldValues(self.h, [NVML_FI_DEV_POWER_INSTANT])[0]
        if v.nvmlReturn != 0:
            return None
        return v.value.uiVal

    def _sample(self) -> dict:
        n, h = self.nv, self.h
        try:
            reasons = n.nvmlDeviceGetCurrentClocksEventReasons(h)
        except Exception:  # noqa: BLE001 - older NVML
            reasons = n.nvmlDeviceGetCurrentClocksThrottleReasons(h)
        try:
            inst = self._instant_mw()
        except Exception:  # noqa: BLE001 - field not supported
            inst = None
        return {"label": self.label, "t_s": round(time.monotonic() - self.t0, 4),
                "sm_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
                "mem_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
                "power_w": round(n.nvmlDeviceGetPowerUsage(h) / 1e3, 1),
                "power_instant_w": "" if inst is None else round(inst / 1e3, 1),
                "temp_c": n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
                "reasons": f"0x{reasons:x}"}

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.nv is not None and self.label:
                try:
                    self.rows.append(self._sample())
                except Exception:  # noqa: BLE001 - keep measuring without clocks
                    self.nv = None
            time.sleep(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


def timer_event(cuda: bool):
    """A recorded CUDA event (the host clock on a CPU), for :func:`elapsed_us`."""
    import torch
    if cuda:
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        return e
    return time.perf_counter()


def elapsed_us(a, b) -> float:
    """Microseconds from :func:`timer_event` ``a`` to ``b``."""
    if isinstance(a, float):
        return (b - a) * 1e6
    return a.elapsed_time(b) * 1e3


class Rig:
    """The device, the kernels and the run's rows."""

    def __init__(self, device, cuda: bool, tiny: bool, sampler: Sampler, idle_s: float):
        self.device, self.cuda, self.tiny = device, cuda, tiny
        self.sampler, self.idle_s = sampler, idle_s
        self.windows: list[dict] = []
        self.periods: list[dict] = []

    def sync(self) -> None:
        import torch
        if self.cuda:
            torch.cuda.synchronize()

    def idle(self, label: str) -> None:
        """Nothing queued, the host asleep: the GPU idles for ``idle_s`` (sampled)."""
        self.sync()
        self.sampler.label = label
        time.sleep(self.idle_s)

    def event(self):
        return timer_event(self.cuda)

    def gemm(self, m: int, n: int, k: int, dtype: str):
        import torch
        if self.tiny:
            m, n, k = 64, 64, 64
        dt = torch.float16 if dtype == "fp16" else torch.bfloat16
        x = torch.randn(m, k, device=self.device, dtype=dt)
        w = torch.randn(n, k, device=self.device, dtype=dt)
        return lambda: torch.nn.functional.linear(x, w)

    def copy(self):
        import torch
        n = 2 ** 12 if self.tiny else 2 ** 27      # 256 MiB of bf16 each way
        x = torch.randn(n, device=self.device, dtype=torch.bfloat16)
        y = torch.empty_like(x)
        return lambda: y.copy_(x)

    def attention(self):
        import torch
        import torch.nn.functional as F
        b, h, s, d = (1, 2, 64, 32) if self.tiny else (4, 32, 2048, 128)
        q, k, v = (torch.randn(b, h, s, d, device=self.device, dtype=torch.bfloat16)
                   for _ in range(3))
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def estimate_us(self, fn, calls: int = 20) -> float:
        for _ in range(3):
            fn()
        a = self.event()
        for _ in range(calls):
            fn()
        b = self.event()
        self.sync()
        return max(1.0, elapsed_us(a, b) / calls)

    def ramp(self, phase: str, case: str, dtype: str, fn, seconds: float) -> None:
        """``fn`` back to back for ``seconds`` after an idle spell, timed in ~1 ms windows."""
        est = self.estimate_us(fn)
        per = max(1, round(1000.0 / est))
        windows = max(1, round(seconds * 1e6 / (per * est)))
        self.idle(f"{phase} idle {case}")
        self.sampler.label = f"{phase} {case}"
        ev = [self.event()]
        for i in range(windows):
            for _ in range(per):
                fn()
            ev.append(self.event())
            if self.cuda and i >= 40:
                ev[i - 40].synchronize()   # keep the host within ~40 ms of the GPU
        self.sync()
        self.sampler.label = ""
        t = 0.0
        for i in range(windows):
            us = elapsed_us(ev[i], ev[i + 1])
            self.windows.append({"phase": phase, "case": case, "dtype": dtype,
                                 "t_ms": round(t / 1e3, 3), "calls": per,
                                 "dev_us": round(us, 2), "per_call_us": round(us / per, 3)})
            t += us
        _log(f"{phase} {case}: {windows} windows, first {self.windows[-windows]['per_call_us']}"
             f" us, last {self.windows[-1]['per_call_us']} us a call")

    def duty(self, gap: str, period_ms: float, d: float, seconds: float, gemm, copy,
             gemm_us: float, copy_us: float) -> None:
        """Periods of a GEMM stretch (share ``d`` of ``period_ms``) and a gap: idle (the host
        drains the GPU and sleeps) or memory-bound copies."""
        n_g = max(1, round(d * period_ms * 1e3 / gemm_us))
        gap_us = (1.0 - d) * period_ms * 1e3
        n_c = max(1, round(gap_us / copy_us))
        periods = max(2, round(seconds * 1e3 / period_ms))
        case = f"{gap} P{period_ms:g} d{d:g}"
        self.idle(f"duty idle {case}")
        self.sampler.label = f"duty {case}"
        marks = []   # (stretch start, stretch end) events
        for i in range(periods):
            a = self.event()
            for _ in range(n_g):
                gemm()
            b = self.event()
            marks.append((a, b))
            if gap == "idle":
                self.sync()
                time.sleep(gap_us / 1e6)
            else:
                for _ in range(n_c):
                    copy()
                if self.cuda and i >= 40:
                    marks[i - 40][1].synchronize()
        end = self.event()
        self.sync()
        self.sampler.label = ""
        group = max(1, round(10.0 / period_ms))
        t = 0.0
        for j in range(0, periods, group):
            gu = pu = 0.0
            cnt = 0
            for i in range(j, min(periods, j + group)):
                a, b = marks[i]
                nxt = marks[i + 1][0] if i + 1 < periods else end
                gu += elapsed_us(a, b)
                pu += elapsed_us(b, nxt)
                cnt += 1
            self.periods.append({"case": "4096x4096x4096 bf16", "gap": gap,
                                 "period_ms": period_ms, "duty_set": d, "t_ms": round(t / 1e3, 3),
                                 "periods": cnt, "gemms": cnt * n_g, "gemm_us": round(gu, 1),
                                 "gap_us": round(pu, 1),
                                 "per_gemm_us": round(gu / (cnt * n_g), 3)})
            t += gu + pu
        first = self.periods[-((periods + group - 1) // group)]["per_gemm_us"]
        _log(f"duty {case}: {periods} periods, first {first} us, last "
             f"{self.periods[-1]['per_gemm_us']} us a GEMM")


def run(rig: Rig, phases: list[str], args) -> None:
    big = (4096, 16384, 4096)
    for name in phases:
        if name == "ramp":
            for case, dtype, fn, secs in (
                    ("gemm 4096x16384x4096", "bf16", rig.gemm(*big, "bf16"), 3.0),
                    ("copy 256MiB", "bf16", rig.copy(), 2.0),
                    ("gemm 4096x16384x4096", "fp16", rig.gemm(*big, "fp16"), 2.0),
                    ("gemm 8192x10240x2560", "bf16", rig.gemm(8192, 10240, 2560, "bf16"), 2.0),
                    ("gemm 4096x4096x4096", "bf16", rig.gemm(4096, 4096, 4096, "bf16"), 2.0),
                    ("gemm 2048x2560x2560", "bf16", rig.gemm(2048, 2560, 2560, "bf16"), 2.0),
                    ("sdpa causal 4x32x2048x128", "bf16", rig.attention(), 2.0)):
                rig.ramp("ramp", case, dtype, fn, secs * args.scale)
                flush(rig, args.out)
        elif name == "burst":
            fn = rig.gemm(*big, "bf16")
            for secs in (0.003, 0.03, 0.3):
                rig.ramp("burst", f"gemm 4096x16384x4096 {secs * 1e3:g} ms", "bf16", fn, secs)
            flush(rig, args.out)
        elif name == "duty":
            gemm, copy = rig.gemm(4096, 4096, 4096, "bf16"), rig.copy()
            g_us, c_us = rig.estimate_us(gemm), rig.estimate_us(copy)
            _log(f"duty: GEMM {g_us:.1f} us, copy {c_us:.1f} us (warm estimates)")
            for gap in ("idle", "mem"):
                for period_ms in (2.0, 20.0, 200.0):
                    for d in (0.2, 0.4, 0.6, 0.8, 0.9):
                        rig.duty(gap, period_ms, d, args.duty_s * args.scale, gemm, copy,
                                 g_us, c_us)
                    flush(rig, args.out)


def flush(rig: Rig, out: str) -> None:
    write_csv(os.path.join(out, "windows.csv"), WINDOW_COLUMNS, rig.windows)
    write_csv(os.path.join(out, "periods.csv"), PERIOD_COLUMNS, rig.periods)
    write_csv(os.path.join(out, "clocks.csv"), CLOCK_COLUMNS, rig.sampler.rows)


def main(argv=None) -> int:
    ap = parser("powercap", __doc__)
    ap.add_argument("--phases", default="ramp,burst,duty")
    ap.add_argument("--idle-s", type=float, default=1.0)
    ap.add_argument("--duty-s", type=float, default=2.0)
    ap.add_argument("--sample-ms", type=float, default=5.0)
    ap.add_argument("--scale", type=float, default=1.0, help="scale every phase's duration")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    device, _, cuda = start_run(args, "powercap")   # the clocks warmed up there
    sampler = Sampler(args.sample_ms / 1e3)
    with open(os.path.join(args.out, "nvml_env.txt"), "w") as fh:
        fh.write("\n".join(sampler.info) + "\n")
    for line in sampler.info:
        _log(line)
    rig = Rig(device, cuda, args.tiny, sampler, args.idle_s)
    try:
        run(rig, [p.strip() for p in args.phases.split(",") if p.strip()], args)
    finally:
        sampler.stop()
        flush(rig, args.out)
    return finish(t0, [])   # no phase guarded here: a failure ends the run with its traceback


if __name__ == "__main__":
    sys.exit(main())
