#!/usr/bin/env python3
"""Write what `collsim simulate` prints for the fabric and contention cases, to compare trees.

    python scripts/fabric_outputs.py OUTDIR [--root TREE] [--only SUBSTRING]
    diff -r BEFORE_DIR AFTER_DIR            # empty: every output byte for byte the same

Each case runs as a whole process (``python -m simulator simulate``) twice: the text summary
(``--full-tables``) and ``--json -``; stdout, stderr and the exit code go to OUTDIR. The
cases: SimAI's 9216-GPU example on the shared fabric (``--topology``, ``--contention``,
hashed and ideal ECMP on 4-server leaves, 2:1 oversubscribed, one NIC a server), the same at
147,456 GPUs, and smaller workloads that meet on links (seed 004 with contention, one NIC, a
hashed fat tree, a straggler, jitter; Mixtral 256 on oversubscribed leaves, interleaved with
blocking sends, a degraded NIC and leaf uplinks; two jobs packed and spread; Mixtral 32 on
two NICs a server).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
W = os.path.join(ROOT, "workloads") + os.sep
EX = W + "simai_example_9216.txt"
SEED = W + "seed004_moe_tp8_ep4_pp4_128gpus.txt"
MIX = W + "mixtral8x7b_256gpu_tp4_pp4_ep8.txt"
GPT = W + "aicb_gpt_13B-world_size64-tp8-pp2-ep1-gbs128-mbs1-seq4096.txt"
MIX32 = W + "aicb_Mixtral_8x7B-world_size32-tp4-pp1-ep4-gbs64-mbs1-seq4096.txt"
T = ["--topology", "dgx-h100"]

CASES = [
    ("9216-topology", [EX, *T]),
    ("9216-contention", [EX, "--contention"]),
    ("9216-hash-leaf4", [EX, *T, "--ecmp", "hash", "--servers-per-leaf", "4"]),
    ("9216-ideal-leaf4", [EX, *T, "--ecmp", "ideal", "--servers-per-leaf", "4"]),
    ("9216-oversub2", [EX, *T, "--oversubscription", "2"]),
    ("9216-one-nic", [EX, "--contention", "--nics-per-server", "1"]),
    ("147k-topology", [EX, "--gpus", "147456", *T]),
    ("147k-contention", [EX, "--gpus", "147456", "--contention"]),
    ("seed-contention", [SEED, "--contention"]),
    ("seed-one-nic", [SEED, "--contention", "--nics-per-server", "1"]),
    ("seed-fat-tree-hash", [SEED, "--topology", "fat-tree-h100", "--ecmp", "hash"]),
    ("seed-straggler", [SEED, *T, "--straggler", "rank=17,compute=1.3"]),
    ("seed-jitter", [SEED, "--contention", "--jitter", "cv=0.05,seed=3"]),
    ("seed-stragglers-degrade", [SEED, *T, "--straggler", "fraction=0.05,compute=1.2,seed=7",
                                 "--degrade", "server=3,nic=0.5"]),
    ("mix256-oversub4", [MIX, *T, "--oversubscription", "4"]),
    ("mix256-interleaved-blocking-hash", [MIX, *T, "--pp-schedule", "interleaved", "--vpp",
                                          "2", "--blocking-sends", "on", "--ecmp", "hash"]),
    ("mix256-fat-tree-degrade", [MIX, "--topology", "fat-tree-h100", "--degrade",
                                 "server=3,nic=0.5"]),
    ("mix256-leaf-uplink", [MIX, *T, "--servers-per-leaf", "2", "--degrade",
                            "leaf=0,uplink=0.5"]),
    ("gpt13-cojob-packed", [GPT, "--gpus", "128", *T, "--co-job", MIX32, "--placement",
                            "packed"]),
    ("gpt13-cojob-spread", [GPT, *T, "--co-job", GPT, "--placement", "spread"]),
    ("mix32-two-nics", [MIX32, "--contention", "--nics-per-server", "2"]),
    ("mix32-engine-detailed", [MIX32, "--engine", "detailed", "--contention"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--root", default=ROOT, help="the tree to run (default: this checkout)")
    ap.add_argument("--only", default="", help="cases whose name contains this")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    env = dict(os.environ, PYTHONPATH=root)
    os.makedirs(args.outdir, exist_ok=True)
    for name, case in CASES:
        if args.only not in name:
            continue
        for way, extra in (("text", ["--full-tables"]), ("json", ["--json", "-"])):
            p = subprocess.run([sys.executable, "-m", "simulator", "simulate", *case, *extra],
                               capture_output=True, cwd=root, env=env)
            base = os.path.join(args.outdir, f"{name}.{way}")
            with open(base + ".out", "wb") as f:
                f.write(p.stdout)
            with open(base + ".err", "wb") as f:
                f.write(p.stderr + f"\nexit {p.returncode}\n".encode())
        print(name, p.returncode, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
