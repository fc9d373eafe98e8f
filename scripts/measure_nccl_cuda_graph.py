"""GPU-only collective times on 2 GPUs: eager back-to-back average and CUDA-graph replay.

The source of the h200x2 preset's base latencies and protocol shares (topologies/h200x2.yaml).
Per op and size (1 KiB .. 1 GiB, bf16): 5 warm-up calls, then `iters` calls issued back to
back with CUDA events around each (call_us: the median call, the slower rank's), then
timed as one span (eager_us: the average), then the same calls captured in one
CUDA graph and replayed 3 times (graph_us: per call; no host dispatch, so this is the
device time nccl-tests would see). Needs PyTorch with NCCL and 2 GPUs::

    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    python3 scripts/measure_nccl_cuda_graph.py --out auto.csv
    python3 scripts/measure_nccl_cuda_graph.py --out ll.csv --ops all_reduce,all_gather \
        --proto LL --max-log2 28

(what produced topologies/data/h200x2_cuda_graph_collectives.csv and
h200x2_cuda_graph_protocols.csv; h200x4_cuda_graph_collectives.csv with ``--world 4``).
"""
import argparse
import csv
import os


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ops", default="all_reduce,all_gather,reduce_scatter,all_to_all,"
                                     "broadcast,sendrecv")
    ap.add_argument("--proto", default="")
    ap.add_argument("--algo", default="")
    ap.add_argument("--max-log2", type=int, default=30)
    ap.add_argument("--world", type=int, default=2, help="GPUs (one process each)")
    a = ap.parse_args()
    import torch.multiprocessing as mp
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    if a.proto:
        os.environ["NCCL_PROTO"] = a.proto
    if a.algo:
        os.environ["NCCL_ALGO"] = a.algo
    mp.spawn(worker, args=(a.world, a), nprocs=a.world, join=True)


def make_call(op, n, rank, world):
    """One call of ``op`` on ``n`` bf16 elements, on buffers made for it."""
    import torch
    import torch.distributed as dist
    dt = torch.bfloat16

    def empty(k):
        return torch.empty(k, device="cuda", dtype=dt)

    def rand(k):
        return torch.randn(k, device="cuda", dtype=dt)
    if op == "all_reduce":
        buf = rand(n)
        return lambda: dist.all_reduce(buf)
    if op == "all_gather":
        out, inp = empty(n), rand(n // world)
        return lambda: dist.all_gather_into_tensor(out, inp)
    if op == "reduce_scatter":
        inp, out = rand(n), empty(n // world)
        return lambda: dist.reduce_scatter_tensor(out, inp)
    if op == "all_to_all":
        inp, out = rand(n), empty(n)
        return lambda: dist.all_to_all_single(out, inp)
    if op == "broadcast":
        buf = rand(n)
        return lambda: dist.broadcast(buf, 0)
    if op == "sendrecv":
        sb, rb = rand(n), empty(n)

        def sendrecv():
            ops = [dist.P2POp(dist.isend, sb, (rank + 1) % world),
                   dist.P2POp(dist.irecv, rb, (rank - 1) % world)]
            for r in dist.batch_isend_irecv(ops):
                r.wait()
        return sendrecv
    raise SystemExit(f"unknown op {op!r}")


def worker(rank, world, a):
    import torch
    import torch.distributed as dist
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world,
                            device_id=torch.device(f"cuda:{rank}"))
    x = torch.ones(1024, device="cuda")
    dist.all_reduce(x)
    torch.cuda.synchronize()
    rows = []
    sizes = [1 << k for k in range(10, a.max_log2 + 1)]
    for op in a.ops.split(","):
        for S in sizes:
            fn = make_call(op, S // 2, rank, world)
            iters = 20 if S <= (64 << 20) else 5
            for _ in range(5):
                fn()
            torch.cuda.synchronize()
            dist.barrier()
            torch.cuda.synchronize()
            # per call, as inside a framework: events around each call, median over calls
            evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                   for _ in range(iters)]
            for s0, s1 in evs:
                s0.record()
                fn()
                s1.record()
            torch.cuda.synchronize()
            per_call = sorted(s0.elapsed_time(s1) * 1000 for s0, s1 in evs)[iters // 2]
            dist.barrier()
            torch.cuda.synchronize()
            e0 = torch.cuda.Event(enable_timing=True)
            e1 = torch.cuda.Event(enable_timing=True)
            e0.record()
            for _ in range(iters):
                fn()
            e1.record()
            torch.cuda.synchronize()
            eager = e0.elapsed_time(e1) * 1000 / iters
            graph = float("nan")
            try:
                g = torch.cuda.CUDAGraph()
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    fn()
                torch.cuda.current_stream().wait_stream(s)
                torch.cuda.synchronize()
                with torch.cuda.graph(g):
                    for _ in range(iters):
                        fn()
                g.replay()
                torch.cuda.synchronize()
                dist.barrier()
                torch.cuda.synchronize()
                reps = 3
                e0.record()
                for _ in range(reps):
                    g.replay()
                e1.record()
                torch.cuda.synchronize()
                graph = e0.elapsed_time(e1) * 1000 / (iters * reps)
                del g
            except Exception as exc:
                if rank == 0:
                    print("graph failed", op, S, repr(exc)[:200], flush=True)
            t = torch.tensor([eager, graph, per_call], device="cuda", dtype=torch.float64)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            if rank == 0:
                rows.append([op, world, S, round(t[0].item(), 3), round(t[1].item(), 3),
                             a.proto or "auto", a.algo or "auto", round(t[2].item(), 3)])
                print(rows[-1], flush=True)
            del fn
            torch.cuda.empty_cache()
    if rank == 0:
        with open(a.out, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["op", "ranks", "bytes", "eager_us", "graph_us", "proto", "algo",
                        "call_us"])
            w.writerows(rows)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
