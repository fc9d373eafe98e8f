"""One GPU: the kernel sweep and the GPT training steps that fit and validate the compute model.

    python -m simulator.measure.compute_run --out DIR            # a GPU (cuda:0)
    python -m simulator.measure.compute_run --out DIR --tiny --device cpu   # a dry run

Writes ``kernels.csv`` (:mod:`simulator.measure.kernels`), ``train.csv`` and ``profile.csv``
(:mod:`simulator.measure.train`) and ``compute_env.txt`` into DIR. ``--tiny`` shrinks every
shape (for checking the scripts on a CPU). Torch is imported inside functions only.
"""
from __future__ import annotations

import os
import sys
import time

from .runstart import finish, parser, start_run
from .runstart import log as _log


def main(argv=None) -> int:
    ap = parser("compute_run", __doc__)
    ap.add_argument("--phases", default="host,train,gemm,eltwise,attention,loss,optimizer")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per case (0: by size)")
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="stop starting new work after this many seconds")
    ap.add_argument("--cases", default="", help="train cases to run (names; default all)")
    ap.add_argument("--hostfloor-layers", default="1,2,4,8,16",
                    help="layer counts of the tiny GPTs of the host-floor phase")
    ap.add_argument("--hostfloor-reps", type=int, default=20)
    args = ap.parse_args(argv)

    from . import kernels, train
    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "compute_run")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    left = lambda: args.budget_s - (time.monotonic() - t0)  # noqa: E731
    sw = kernels.Sweep(args.out, device, dtype, cuda, log=_log)
    tiny = args.tiny
    vocab, max_position = train.vocab_positions(tiny)
    from .gpt import padded_vocab
    pv = padded_vocab(vocab)

    def phase(name, fn, share):
        if name not in phases:
            return
        if left() <= 5:
            _log(f"{name}: skipped, budget spent")
            return
        sw.phase(name, fn, max(5.0, share * left()))
        _log(f"{name}: done, {len(sw.rows)} kernel rows so far, {left():.0f} s left")

    phase("host", lambda: kernels.run_host(sw), 0.05)

    def do_train():
        rows: list[dict] = []
        prof: list[dict] = []
        cases = train.DEFAULT_CASES
        if tiny:
            train.MODELS.update({"tiny": (2, 64, 4), "tiny2": (3, 128, 4)})
            cases = [("tiny", 64, 2, 1, False), ("tiny", 64, 2, 2, True),
                     ("tiny2", 128, 1, 1, False)]
        if args.cases:
            want = set(args.cases.split(","))
            cases = [c for c in cases if train.case_name(*c) in want]
        t_end = time.monotonic() + sw.budget_s
        for spec in cases:
            if time.monotonic() > t_end:
                _log(f"train: budget spent before {train.case_name(*spec)}")
                break
            big = train.MODELS[spec[0]][1] >= 2560 or spec[2] * spec[1] * spec[3] >= 16384
            steps = args.steps or (6 if big else 12)
            warm = 2 if big else 3
            r = train.run_case(spec, device, dtype, cuda, steps, warm, vocab=vocab,
                               max_position=max_position,
                               profile_rows=prof if (spec in train.PROFILED or tiny) else None,
                               log=_log)
            rows.append(r)
            _log(f"train {r['case']}: {r.get('status')} step {r.get('step_ms')} ms "
                 f"(fwd+bwd {r.get('fwdbwd_ms')}, optimizer {r.get('optimizer_ms')}), "
                 f"{r.get('tflops_model')} TFLOP/s, mem {r.get('max_mem_gib')} GiB, "
                 f"loss {r.get('loss_first')} -> {r.get('loss_last')}")
            train.write_csv(os.path.join(args.out, "train.csv"), train.COLUMNS, rows)
            train.write_csv(os.path.join(args.out, "profile.csv"), train.PROFILE_COLUMNS, prof)
    phase("train", do_train, 0.55)

    if tiny:
        models = [(64, 256, pv)]
        tokens = [64, 256]
        numels = [2 ** 12, 2 ** 14]
        att = [(1, 64, 2, 32), (2, 128, 4, 32)]
        ltok = [64, 128]
        opt = [(2, 64, 256)]
    else:
        models = [(h, 4 * h, pv) for _, h, _ in train.MODELS.values()]
        tokens = [1024, 2048, 4096, 8192, 16384, 32768]
        numels = [2 ** 14, 2 ** 16, 2 ** 18, 2 ** 20, 2 ** 22, 2 ** 24, 2 ** 26, 2 ** 28]
        att = sorted({(b, s, nh, h // nh) for _, h, nh in train.MODELS.values()
                      for s in (1024, 2048) for b in (1, 4, 16)})
        ltok = [1024, 4096, 16384, 32768]
        opt = [(L, h, 4 * h) for L, h, _ in train.MODELS.values()]
    phase("sync", lambda: kernels.sync_check(device, dtype, log=_log), 0.05)
    floor_layers = tuple(int(x) for x in args.hostfloor_layers.split(",") if x.strip())
    phase("hostfloor", lambda: kernels.run_host_floor(sw, (1, 2) if tiny else floor_layers,
                                                      reps=args.hostfloor_reps), 0.9)
    phase("attention_prof", lambda: kernels.run_profiled_attention(sw, att), 0.3)
    phase("embedding_prof", lambda: kernels.run_profiled_embedding(
        sw, ltok, pv, (64,) if tiny else (768, 2048, 4096)), 0.2)
    phase("attention", lambda: kernels.run_attention(sw, att), 0.2)
    phase("loss", lambda: kernels.run_loss(sw, ltok, pv, (64,) if tiny else (768, 2048, 4096)),
          0.15)
    phase("optimizer", lambda: kernels.run_optimizer(sw, opt, vocab=vocab), 0.25)
    phase("eltwise", lambda: kernels.run_eltwise(sw, numels, (64,) if tiny else (1024, 4096)),
          0.3)
    phase("gemm", lambda: kernels.run_gemm(sw, kernels.gemm_shapes(models, tokens,
                                                                   grid=not tiny)), 0.9)
    return finish(t0, sw.failed)


if __name__ == "__main__":
    sys.exit(main())
