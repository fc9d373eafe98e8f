#!/usr/bin/env python3
"""Write what `collsim simulate` prints for the benchmark files, to compare two trees.

    python scripts/simulate_outputs.py OUTDIR [--root TREE]
    diff -r BEFORE_DIR AFTER_DIR            # empty: every output byte for byte the same

For each file compare_simai.py and startup.py time (seed 004, the 9216 example, the same at
147,456 GPUs, GPT-175B communication only at 1,024 GPUs with GA 8/32/128/512 and at 65,536
GPUs with GA 8, with the generator's sidecar) and both cost models (default nccl, simai), it
runs the whole process (``python -m simulator simulate``) three ways: the text summary
(``--full-tables``), ``--json -`` and ``--csv -``, and writes each one's stdout, stderr and
exit code to OUTDIR. The file names in the outputs are the same in both trees (the inputs
are made once, in OUTDIR/inputs, by this checkout).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOADS = os.path.join(ROOT, "workloads")


def _env(root: str) -> dict:
    env = dict(os.environ, PYTHONPATH=root)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _inputs(folder: str) -> list[tuple[str, str]]:
    os.makedirs(folder, exist_ok=True)
    out = []
    for name in ("seed004_moe_tp8_ep4_pp4_128gpus.txt", "simai_example_9216.txt"):
        dst = os.path.join(folder, name)
        with open(os.path.join(WORKLOADS, name)) as src, open(dst, "w") as f:
            f.write(src.read())
        out.append((name.split("_")[0] + ("" if "seed" in name else "9216"), dst))
    text = open(os.path.join(WORKLOADS, "simai_example_9216.txt")).read()
    header, rest = text.split("\n", 1)
    dst = os.path.join(folder, "x147k.txt")
    with open(dst, "w") as f:
        f.write(re.sub(r"all_gpus:\s*\d+", "all_gpus: 147456", header) + "\n" + rest)
    out.append(("x147k", dst))
    for gpus, ga in ((1024, 8), (1024, 32), (1024, 128), (1024, 512), (65536, 8)):
        dst = os.path.join(folder, f"gpt175b-comm-{gpus}-ga{ga}.txt")
        if not os.path.exists(dst):
            subprocess.run([sys.executable, "-m", "simulator", "generate", "--model",
                            "gpt-175b", "--world-size", str(gpus), "--tp", "8", "--pp", "8",
                            "--global-batch", str(ga * gpus // 64), "--micro-batch", "1",
                            "--seq-length", "4096", "--style", "aicb", "--no-compute",
                            "--use-distributed-optimizer", "-o", dst],
                           check=True, capture_output=True, cwd=ROOT, env=_env(ROOT))
        out.append((f"comm{gpus}-ga{ga}", dst))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--root", default=ROOT, help="the tree to run (default: this checkout)")
    ap.add_argument("--inputs", help="folder of the inputs (default OUTDIR/inputs; give the "
                    "same one for both trees so the paths in the outputs agree)")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    os.makedirs(args.outdir, exist_ok=True)
    files = _inputs(os.path.abspath(args.inputs or os.path.join(args.outdir, "inputs")))
    for label, path in files:
        for model, flags in (("nccl", []), ("simai", ["--cost-model", "simai"])):
            for way, extra in (("text", ["--full-tables"]), ("json", ["--json", "-"]),
                               ("csv", ["--csv", "-"])):
                p = subprocess.run([sys.executable, "-m", "simulator", "simulate", *flags,
                                    *extra, path], capture_output=True, cwd=root,
                                   env=_env(root))
                base = os.path.join(args.outdir, f"{label}.{model}.{way}")
                with open(base + ".out", "wb") as f:
                    f.write(p.stdout)
                with open(base + ".err", "wb") as f:
                    f.write(p.stderr + f"\nexit {p.returncode}\n".encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
