"""Run sweep points on any ``concurrent.futures.Executor``, with an on-disk cache.

Workers get a point (a small dict of plain values) and return a small summary dict; the
workload and the simulation are built and dropped inside the worker, never pickled. The
parent writes each finished point to ``<cache>/<hash>.json`` as it arrives (atomically), so
an interrupted sweep resumes where it stopped and a repeated one computes nothing.
Infeasible configurations are results (``status: infeasible``) and are cached; unexpected
failures (``status: error``) are recorded in the output but retried on the next run.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from collections import OrderedDict
from concurrent.futures import BrokenExecutor, Executor, Future, as_completed
from contextlib import contextmanager

from ..errors import InputError

STATUSES = ("ok", "infeasible", "error")


def run_point(point: dict, base_dir: str = ".") -> dict:
    """Generate and simulate one point. Never raises: failures come back as a status."""
    t0 = time.perf_counter()
    try:
        result = _simulate_point(point, base_dir)
        out = {"status": "ok", "error": "", **result}
    except InputError as exc:
        out = {"status": "infeasible", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 -- a failing point must not stop the others
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
        out = {"status": "error", "error": f"{type(exc).__name__}: {exc}{where}"}
    out["wall_s"] = round(time.perf_counter() - t0, 4)
    return out


def run_chunk(points: list[dict], base_dir: str = ".") -> list[dict]:
    """:func:`run_point` on each of ``points``, in order: one call into a worker for several
    points, so a large sweep does not pay a round trip between processes per point."""
    return [run_point(p, base_dir) for p in points]


#: at most this many points go to a worker in one call (a chunk's results arrive together)
MAX_CHUNK = 32


def chunk_size(points: int, workers: int) -> int:
    """Points per call into a worker: about eight calls per worker over the sweep (idle
    workers at the end of an uneven sweep wait at most for one chunk), at most
    :data:`MAX_CHUNK`, and one point per call for small sweeps."""
    return max(1, min(MAX_CHUNK, points // (8 * max(1, workers))))


def _simulate_point(p: dict, base_dir: str) -> dict:
    import warnings

    from ..costmodel.registry import cost_model_name, preset_for_gpu
    from ..provenance import (blocking_sends, embedding_allreduce_bytes,
                              grad_sync_before_optimizer)
    from ..engine import SimulationOptions, simulate
    from ..result import BREAKDOWN_GROUPS

    point, gen_opts = _parsed(p)
    cfg, gen, sidecar = _generated(gen_opts, base_dir)
    # the same builder as `collsim simulate`: topology, cluster options and calibration alike
    cluster_opts = point.cluster_options(base_dir)
    cost_opts = point.cost_model_options(base_dir)
    # the rules `collsim simulate` applies to the generated table and its sidecar: the
    # workload GPU's preset (changed by the point's cluster keys) where it names no
    # topology, the tied-embedding all-reduce the table cannot carry, Megatron's blocking
    # pipeline sends
    preset = None if cluster_opts.topology else preset_for_gpu(cfg.gpu)
    cluster, cost_model = _cost_model(cluster_opts, cost_opts, preset, cfg.world)
    schedule = p.get("pp_schedule") or ("interleaved" if cfg.vpp and cfg.vpp > 1 else "1f1b")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = simulate(gen.workload, cluster, cost_model, SimulationOptions(
            pp_schedule=schedule, vpp_chunks=cfg.vpp if schedule == "interleaved" else None,
            embedding_allreduce_bytes=embedding_allreduce_bytes(sidecar),
            blocking_sends=blocking_sends("auto", sidecar, schedule),
            grad_sync_before_optimizer=grad_sync_before_optimizer(sidecar), row_detail=False))
    c = res.critical
    it_s = res.iteration_ns / 1e9
    tokens = cfg.global_batch * cfg.seq_length
    peak = cfg.gpu_spec.peak_tflops * 1e12
    out = {
        "tp": cfg.tp, "sp": cfg.sp, "dp": cfg.dp, "dp_ep": cfg.dp_ep, "ga": cfg.ga,
        "global_batch": cfg.global_batch, "pp_schedule": schedule,
        "cost_model": cost_model_name(cluster_opts, cost_opts),
        "iteration_ms": res.iteration_ns / 1e6,
        "compute_ms": c.compute_ns / 1e6,
        "recompute_ms": c.recompute_ns / 1e6,
        "bubble_ms": c.bubble_ns / 1e6,
        **{f"exposed_{g.lower()}_ms": c.exposed_ns[g] / 1e6 for g in BREAKDOWN_GROUPS},
        "tokens_per_s": tokens / it_s if it_s > 0 else 0.0,
        "tokens_per_s_per_gpu": tokens / it_s / cfg.world if it_s > 0 else 0.0,
        "mfu": (gen.model_flops / (it_s * cfg.world * peak)
                if gen.compute_modelled and it_s > 0 else None),
        "memory_gib": gen.memory.total_gib,
        "params_per_gpu": gen.params.per_gpu,
        "notes": "; ".join(gen.notes),
    }
    return out


# Points of a sweep that differ only in cluster, cost-model or schedule keys share one
# generated workload: generating it again would cost more than the point's simulation, and
# the shared object keeps the engine's per-workload memos (simulator/engine/memo.py) warm.
# Keyed by the workload's options and the spec's folder; the few most recent are kept.
_GENERATED: OrderedDict = OrderedDict()
_GENERATED_KEPT = 8


def _generated(options, base_dir: str):
    """(train config, generated workload, its sidecar assumptions) for these workload
    options, memoized in this process; warnings the generation gave are given again on every
    use."""
    import warnings

    from ..generate import generate

    key = (options, os.path.abspath(base_dir))
    hit = _GENERATED.get(key)
    if hit is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cfg = options.train_config(base_dir, derived_notes=False)
            gen = generate(cfg, compute=options.compute)
            sidecar = gen.assumptions()
        hit = _GENERATED[key] = (cfg, gen, sidecar, [(w.message, w.category) for w in caught])
        while len(_GENERATED) > _GENERATED_KEPT:
            _GENERATED.popitem(last=False)
    else:
        _GENERATED.move_to_end(key)
    cfg, gen, sidecar, said = hit
    for message, category in said:
        warnings.warn(message, category, stacklevel=3)
    return cfg, gen, sidecar


# A point's keys parsed once: sweeps repeat the same few dicts' shapes, and a resumed or
# repeated point is parsed again otherwise. Keyed by the point's items (plain values).
_PARSED: dict = {}
_PARSED_KEPT = 4096


def _parsed(p: dict):
    """(SweepPoint, its GenerateOptions) for this point's dict, memoized in this process."""
    from ..config import SweepPoint

    try:
        key = tuple(sorted(p.items()))
        hash(key)
    except TypeError:   # a value that cannot be a key (a list): parse it every time
        point = SweepPoint.from_point(p)
        return point, point.generate_options()
    hit = _PARSED.get(key)
    if hit is None:
        point = SweepPoint.from_point(p)
        hit = (point, point.generate_options())
        if len(_PARSED) >= _PARSED_KEPT:
            _PARSED.clear()
        _PARSED[key] = hit
    return hit


# Points that differ only in workload or schedule keys share one built cost model (and the
# prices it keeps): building it again is a topology and a preset per point. Keyed by the
# typed cluster and cost-model options, the preset and the job's world size (a model routes
# on a topology built for the job's size); warnings the build gave are given again.
_COST_MODELS: OrderedDict = OrderedDict()
_COST_MODELS_KEPT = 16


def _cost_model(cluster_opts, cost_opts, preset, world: int):
    """(cluster, cost model) as :func:`build_cost_model` builds them, memoized in this
    process."""
    import warnings

    from ..costmodel.registry import build_cost_model

    key = (cluster_opts, cost_opts, preset, world)
    hit = _COST_MODELS.get(key)
    if hit is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            built = build_cost_model(cluster_opts, cost_opts, preset=preset)
        hit = _COST_MODELS[key] = (built, [(w.message, w.category) for w in caught])
        while len(_COST_MODELS) > _COST_MODELS_KEPT:
            _COST_MODELS.popitem(last=False)
    else:
        _COST_MODELS.move_to_end(key)
    built, said = hit
    for message, category in said:
        warnings.warn(message, category, stacklevel=3)
    return built


# ------------------------------------------------------------------------ executors

class SerialExecutor(Executor):
    """Runs each submitted call at once in this process (debugging, tiny sweeps)."""

    def submit(self, fn, /, *args, **kwargs):
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001
            f.set_exception(exc)
        return f


def _worker_init() -> None:
    """In a pool worker: die with the parent (even when it is SIGKILLed), leave Ctrl-C and
    SIGTERM to the parent, which stops the pool itself."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:  # the parent died before prctl took effect
                os._exit(1)
        except (OSError, AttributeError):
            pass


class LocalPool(Executor):
    """A local process pool that can be replaced when a worker dies (run_points retries the
    points that were in flight, so one killed worker fails only its own point)."""

    def __init__(self, jobs: int, ctx):
        self.jobs, self.ctx = jobs, ctx
        self.pool = self._new(jobs)

    def _new(self, jobs: int):
        from concurrent.futures import ProcessPoolExecutor
        return ProcessPoolExecutor(max_workers=jobs, mp_context=self.ctx,
                                   initializer=_worker_init)

    def submit(self, fn, /, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def respawn(self, jobs: int | None = None) -> None:
        self.kill()
        self.pool = self._new(jobs or self.jobs)

    def kill(self) -> None:
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        for proc in procs:
            try:
                proc.kill()
            except (OSError, AttributeError, ValueError):
                pass
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            try:
                proc.join(5)
            except (OSError, AttributeError, ValueError, AssertionError):
                pass

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@contextmanager
def make_executor(kind: str = "process", jobs: int | None = None, scheduler: str | None = None):
    """An Executor: ``process`` (local pool), ``serial``, or ``dask`` (a scheduler address or
    a LocalCluster of ``jobs`` single-threaded worker processes)."""
    if kind == "serial":
        yield SerialExecutor()
        return
    if kind == "process":
        import multiprocessing

        jobs = jobs or os.cpu_count() or 1
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
        ex = LocalPool(jobs, ctx)
        try:
            yield ex
        except BaseException:
            ex.kill()  # Ctrl-C, SIGTERM or an error: no worker outlives the sweep
            raise
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
        return
    if kind == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise InputError("--executor dask needs dask.distributed: pip install "
                             "'collsim[dask]'", field="executor") from None
        cluster = None
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler: {exc}",
                                 field="scheduler") from None
        else:
            cluster = LocalCluster(n_workers=jobs or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            yield client.get_executor()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    raise InputError(f"unknown executor {kind!r}; expected process, dask or serial",
                     field="executor")


# ---------------------------------------------------------------------------- cache

class Cache:
    def __init__(self, directory: str | None):
        self.dir = directory
        self.broken = ""
        if directory:
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot use as the cache directory: {exc.strerror or exc}",
                                 path=directory, field="cache_dir") from None

    def path(self, key: str) -> str:
        assert self.dir   # get and put return early without a cache directory
        return os.path.join(self.dir, f"{key}.json")

    def get(self, key: str) -> dict | None:
        if not self.dir:
            return None
        try:
            with open(self.path(key), encoding="utf-8") as fh:
                data = json.loads(fh.read(1 << 20))
        except (OSError, ValueError, RecursionError):
            return None
        # an entry edited by hand or by another version is recomputed, never trusted
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        if data.get("status") == "infeasible" and isinstance(data.get("error"), str):
            return data
        if data.get("status") == "ok" and all(
                isinstance(data.get(f), (int, float)) and not isinstance(data.get(f), bool)
                and math.isfinite(data[f]) and data[f] >= 0
                for f in ("iteration_ms", "compute_ms", "bubble_ms", "tokens_per_s")):
            return data
        return None

    def put(self, key: str, point: dict, result: dict) -> None:
        if not self.dir or result.get("status") not in ("ok", "infeasible"):
            return
        from ..report.output import write_atomic

        if self.broken:
            return
        try:
            write_atomic(self.path(key), json.dumps({"key": key, "point": point, **result},
                                                    sort_keys=True))
        except InputError as exc:  # a read-only cache: the sweep goes on without it
            import warnings

            from ..errors import SimulationWarning
            self.broken = str(exc)
            warnings.warn(f"not caching results: {exc}", SimulationWarning, stacklevel=2)


# --------------------------------------------------------------------------- progress

class Progress:
    def __init__(self, total: int, enabled: bool = True, desc: str = "sweep"):
        from ..progress import wanted

        self.total = total
        self.enabled = wanted(enabled) and total > 0   # a terminal only, not a pipe or log
        self.counts = {s: 0 for s in STATUSES}
        self.counts["cached"] = 0
        self.done = 0
        self.bar = None
        self.last = 0.0
        if self.enabled:
            try:
                from tqdm import tqdm
                tqdm.monitor_interval = 0
                self.bar = tqdm(total=total, desc=desc, unit="pt", file=sys.stderr,
                                dynamic_ncols=True)
            except ImportError:
                self.bar = None

    def update(self, status: str, cached: bool = False) -> None:
        self.done += 1
        self.counts[status] += 1
        if cached:
            self.counts["cached"] += 1
        if not self.enabled:
            return
        post = (f"ok {self.counts['ok']} infeasible {self.counts['infeasible']} "
                f"error {self.counts['error']} cached {self.counts['cached']}")
        if self.bar is not None:
            self.bar.set_postfix_str(post, refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last > 0.5 or self.done == self.total:
            self.last = now
            sys.stderr.write(f"\r{self.done}/{self.total} points: {post}")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_points(points: list[dict], executor: Executor, cache: Cache | None = None,
               base_dir: str = ".", progress: bool = True) -> list[dict]:
    """Results in point order: each the point, its key, ``cached`` and the run_point output."""
    from .spec import point_key

    cache = cache or Cache(None)
    results: list[dict | None] = [None] * len(points)
    keys = [point_key(p, base_dir) for p in points]
    bar = Progress(len(points), enabled=progress)
    pending: dict[Future, list[int]] = {}
    try:
        first_of: dict[str, int] = {}
        todo: list[int] = []
        for i, (p, key) in enumerate(zip(points, keys)):
            hit = cache.get(key)
            if hit is not None:
                results[i] = {"point": p, "key": key, "cached": True,
                              **{k: v for k, v in hit.items() if k not in ("key", "point")}}
                bar.update(hit["status"], cached=True)
            elif key in first_of:
                continue  # the same point twice: run once
            else:
                first_of[key] = i
                todo.append(i)
        # a worker that dies (killed, out of memory) breaks the whole pool: the points in
        # flight (every point of the chunks in flight) are run again in a new pool; a point
        # that is in flight at a second break runs alone, so only a point that kills its own
        # worker is failed for it
        lost: dict[int, int] = {}
        isolated = False
        workers = getattr(executor, "jobs", None) or os.cpu_count() or 1
        while todo:
            batch, todo = (todo[:1], todo[1:]) if isolated else (todo, [])
            if isolated and isinstance(executor, LocalPool):   # only a pool breaks
                executor.respawn(1)
            size = chunk_size(len(batch), workers)
            chunks = [batch[k:k + size] for k in range(0, len(batch), size)]
            pending = {executor.submit(run_chunk, [points[i] for i in chunk], base_dir): chunk
                       for chunk in chunks}
            broken: list[int] = []
            for fut in as_completed(list(pending)):
                chunk = pending.pop(fut)
                try:
                    outs = fut.result()
                except BrokenExecutor:
                    broken.extend(chunk)
                    continue
                except BaseException as exc:  # noqa: BLE001 -- a worker died
                    outs = [{"status": "error", "error": f"{type(exc).__name__}: {exc}"}
                            for _ in chunk]
                for i, res in zip(chunk, outs):
                    cache.put(keys[i], points[i], res)
                    results[i] = {"point": points[i], "key": keys[i], "cached": False, **res}
                    bar.update(res["status"])
            if not broken:
                continue
            if not hasattr(executor, "respawn"):
                retry = []
            else:
                for i in broken:
                    lost[i] = lost.get(i, 0) + 1
                retry = [i for i in broken if lost[i] < (2 if isolated else 3)]
                if any(lost[i] >= 2 for i in broken):
                    isolated = True
                if not isolated:
                    executor.respawn()
            for i in sorted(set(broken) - set(retry)):
                res = {"status": "error", "error": "the worker process running this point "
                       "died (killed, or out of memory)"}
                results[i] = {"point": points[i], "key": keys[i], "cached": False, **res}
                bar.update("error")
            todo = sorted(retry) + todo
        if isolated and hasattr(executor, "respawn"):
            executor.respawn()
    except KeyboardInterrupt:
        for fut in pending:
            fut.cancel()
        raise
    finally:
        bar.close()
    for i, key in enumerate(keys):  # duplicates share their first point's result
        if results[i] is None:
            first = results[keys.index(key)]
            assert first is not None   # every first point ran (or raised above)
            results[i] = dict(first, point=points[i])
    return results  # type: ignore[return-value]
