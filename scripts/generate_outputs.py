#!/usr/bin/env python3
"""Write the tables `collsim generate` writes for a set of configurations, to compare trees.

    python scripts/generate_outputs.py OUTDIR [--root TREE] [--flags="FLAG ..."]
    diff -r BEFORE_DIR AFTER_DIR            # empty: every table byte for byte the same

Each case runs as a whole process (``python -m simulator generate ... -o OUTDIR/NAME.txt``);
only the table is kept (with its exit code and stderr), not the summary or FILE.meta.json,
whose feature list grows with the features. ``--flags`` adds flags to every case: e.g. the
tables of main against this checkout's with ``--flags=--no-gradient-accumulation-fusion``
(identical: the fusion off prices what main priced). The cases: small GPTs on one H200 (the
validated range), GPT 18B TP 8 on A100s (with full recompute and PyTorch DDP too), GPT-175B
TP 8 PP 16 (the distributed optimizer; fp16 with SP and interleaving), Llama 3 8B with FP8,
Llama 2 7B with bf16 main gradients and unfused attention, Mixtral (sequential and grouped
experts), ZeRO-2, BLOOM-176B under --deepspeed and a GPT with untied embeddings and
selective recompute.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
A100 = "--gpu a100 --no-memory-check"

CASES = [
    ("gpt3-125m-ga4", "gpt3-125m --world-size 1 --micro-batch 2 --global-batch 8 "
                      "--seq-length 1024 --gpu h200"),
    ("gpt3-1.3b-ga4", "gpt3-1.3b --world-size 1 --micro-batch 4 --global-batch 16 "
                      "--seq-length 2048 --gpu h200"),
    ("gpt-18b-tp8", "gpt-18b --world-size 256 --tp 8 --global-batch 1024 --micro-batch 4 "
                    f"--seq-length 2048 {A100}"),
    ("gpt-18b-tp8-rc-torch", "gpt-18b --world-size 256 --tp 8 --global-batch 1024 "
                             f"--micro-batch 4 --seq-length 2048 {A100} --recompute "
                             "--DDP-impl torch"),
    ("gpt-175b-pp16", "gpt-175b --world-size 256 --tp 8 --pp 16 --global-batch 128 "
                      f"--seq-length 2048 {A100} --use-distributed-optimizer"),
    ("gpt-175b-fp16-vpp", "gpt-175b --world-size 256 --tp 8 --pp 16 --global-batch 128 "
                          f"--seq-length 2048 {A100} --fp16 --vpp 3 --sp"),
    ("llama-3-8b-fp8", "llama-3-8b --world-size 8 --tp 2 --global-batch 32 --seq-length 4096 "
                       "--gpu h100 --fp8-format hybrid --no-memory-check"),
    ("llama-2-7b-bf16grad-unfused", "llama-2-7b --world-size 8 --tp 1 --global-batch 16 "
                                    "--seq-length 2048 --gpu h200 --grad-reduce-in-bf16 "
                                    "--attention-backend unfused --no-memory-check"),
    ("mixtral-ep4", "mixtral-8x7b --world-size 32 --tp 4 --ep 4 --global-batch 64 "
                    "--seq-length 4096 --gpu h100 --no-memory-check"),
    ("mixtral-ep4-grouped", "mixtral-8x7b --world-size 32 --tp 4 --ep 4 --global-batch 64 "
                            "--seq-length 4096 --gpu h100 --no-memory-check --moe-grouped-gemm"),
    ("gpt-7b-zero2", "gpt-7b --world-size 16 --tp 4 --global-batch 64 --gpu h100 "
                     "--zero-stage 2 --no-memory-check"),
    ("bloom-176b-deepspeed", "bloom-176b --world-size 384 --tp 4 --pp 12 --micro-batch 2 "
                             "--global-batch 2048 --zero-stage 1 --deepspeed --recompute "
                             f"--seq-length 2048 {A100}"),
    ("gpt3-350m-untied-selective", "gpt3-350m --world-size 1 --micro-batch 1 --global-batch 4 "
                                   "--seq-length 1024 --gpu h200 "
                                   "--untie-embeddings-and-output-weights "
                                   "--recompute-activations"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--root", default=ROOT, help="the tree to run (default: this checkout)")
    ap.add_argument("--flags", default="", help="flags added to every case")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    env = dict(os.environ, PYTHONPATH=root)
    outdir = os.path.abspath(args.outdir)
    os.makedirs(outdir, exist_ok=True)
    for name, case in CASES:
        table = os.path.join(outdir, f"{name}.txt")
        cmd = [sys.executable, "-m", "simulator", "generate", "--model", *shlex.split(case),
               *shlex.split(args.flags), "--quiet", "-o", table]
        p = subprocess.run(cmd, capture_output=True, cwd=root, env=env)
        sidecar = table + ".meta.json"
        if os.path.exists(sidecar):
            os.remove(sidecar)
        with open(os.path.join(outdir, f"{name}.err"), "wb") as f:
            f.write(p.stderr + f"exit {p.returncode}\n".encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
