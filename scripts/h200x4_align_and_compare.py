"""Derived files and model comparisons for the 4 x H200 measurements (traces/h200x4/).

Run from the repository root (no GPU needed)::

    python scripts/h200x4_align_and_compare.py aligned     # collectives_aligned.csv (both runs)
    collsim calibrate traces/h200x4/collectives_aligned.csv \\
        --test traces/h200x4/run1/collectives_aligned.csv -o traces/h200x4/calib_h200x4.yaml
    python scripts/h200x4_align_and_compare.py compare     # compare.md: presets and calibrations

``aligned`` drops the uneven all-to-all (``moe_all_to_all``) points whose split offsets are
not 16-byte aligned. `collsim measure` split a share F of each rank's buffer evenly over
the other ranks in whole elements (``moe_splits`` as it was when these runs were made): with
4 ranks and F = 0.05, 0.1, 0.25, 0.5 or 1 a split is not a multiple of 8 bf16 elements, the
chunks start at 2- or 4-byte aligned offsets, and from 16 MiB these points take 1.9-4.2x what
a fit of the aligned points gives (NCCL's unaligned copy path: a controlled pair on 2 GPUs,
traces/h200x2/README.md, confirmed it; ``moe_splits`` now rounds to 8 elements). Real MoE
splits are whole token rows (hidden x 2 bytes), always aligned, so those points measure the
alignment, not the share. Everything else is kept as measured.

``compare`` writes compare.md: the 4-GPU measurements against (a) the 8-GPU presets
uncalibrated (``collsim bench --topology hgx-h200|dgx-h100 --ranks 4``), (b) the 2-GPU
calibration (traces/h200x2/calib_h200x2.yaml) extrapolated to 4 ranks, (c) the 4-GPU
calibration on the other run; plus what the measurements say of the presets' parameters.
"""
from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "traces" / "h200x4"   # the measurements it reads and the files it writes
sys.path.insert(0, str(ROOT))

RUNS = {"run 2 (main)": HERE / "collectives.csv", "run 1": HERE / "run1" / "collectives.csv"}
EVEN_OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "sendrecv")
BANDS = (("<=64KiB", 0, 64 * 1024 + 1), ("64KiB-16MiB", 64 * 1024 + 1, 16 << 20),
         (">=16MiB", 16 << 20, float("inf")))
ELEM = {"bf16": 2, "fp16": 2, "fp32": 4}
ALIGN = 16
PRESETS = ("hgx-h200", "dgx-h100")
CAL2 = ROOT / "traces" / "h200x2" / "calib_h200x2.yaml"
CAL4 = HERE / "calib_h200x4.yaml"
# The header of collectives_aligned.csv names where this script lived when it wrote the
# file: calib_h200x4.yaml records the file's sha256, so the committed bytes stay as they were.
FORMER_PATH = "traces/h200x4/analyze.py"
NVLINK_GBPS = 478.0     # 18 links x 26.562 GB/s per direction (env.txt)


def moe_splits(n: int, world: int, rank: int, share: float) -> list[int]:
    """The splits these runs were measured with (simulator/measure/bench.py before commit
    'measure: uneven all-to-all splits...', copied: torch-free). The current code rounds each
    per-peer split to a multiple of 8 elements."""
    per_peer = min(int(round(n * share / (world - 1))), n // (world - 1))
    splits = [per_peer] * world
    splits[rank] = n - per_peer * (world - 1)
    return splits


def splits_aligned(nbytes: int, world: int, share: float, elem: int = 2,
                   align: int = ALIGN) -> bool:
    """Every rank's split offsets (input and output: the same) are multiples of ``align``."""
    n = nbytes // elem
    for rank in range(world):
        off = 0
        for count in moe_splits(n, world, rank, share):
            if (off * elem) % align:
                return False
            off += count
    return True


def read(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def is_aligned_row(r: dict) -> bool:
    if r["op"] != "moe_all_to_all":
        return True
    return splits_aligned(int(r["bytes"]), int(r["ranks"]), float(r["share_remote"]),
                          ELEM.get(r["dtype"], 2))


def write_aligned() -> None:
    for src in RUNS.values():
        dst = src.with_name("collectives_aligned.csv")
        with open(src, newline="") as fh:
            lines = fh.read().splitlines(keepends=True)
        rows = read(src)
        kept = [line for line, r in zip(lines[1:], rows) if is_aligned_row(r)]
        dropped = sorted({r["share_remote"] for r in rows if not is_aligned_row(r)}, key=float)
        with open(dst, "w", newline="") as fh:
            fh.write(f"# {src.name} of this folder without the moe_all_to_all points whose "
                     f"split offsets are not {ALIGN}-byte aligned\n# (shares "
                     f"{', '.join(dropped)} at every size; written by {FORMER_PATH} "
                     "aligned; see README.md)\n")
            fh.write(lines[0])
            fh.writelines(kept)
        print(f"wrote {dst.relative_to(ROOT)}: {len(kept)} of {len(rows)} rows")


# ----------------------------------------------------------------------------- compare

def band(size: int) -> str:
    for label, lo, hi in BANDS:
        if lo <= size < hi:
            return label
    return BANDS[-1][0]


def bench(preset: str, op: str) -> dict[int, float]:
    """``collsim bench --topology PRESET --ranks 4 --op OP --sizes 1K:1G``'s times in us, from
    the library (the preset's NCCL cost model), rounded as that command's CSV prints them."""
    from simulator.costmodel.bench import bench_rows
    from simulator.costmodel.nccl import NcclCostModel
    from simulator.topology import load_spec
    from simulator.topology.overrides import cluster_for

    spec = load_spec(preset)
    rows = bench_rows(NcclCostModel(spec), cluster_for(spec), op, 4,
                      [1 << k for k in range(10, 31)])
    return {r["bytes"]: round(r["time_us"], 3) for r in rows}


def stats(errs: list[float]) -> str:
    if not errs:
        return "-"
    a = [abs(e) for e in errs]
    return f"{100 * statistics.median(a):.1f}"


def table_rows(pairs: dict[str, list[tuple[int, float, float]]]) -> list[list[str]]:
    """pairs: op -> [(bytes, measured, predicted)] -> rows of the error table."""
    rows = []
    allerr = []
    for op, pts in pairs.items():
        errs = [(s, p / m - 1) for s, m, p in pts]
        allerr += [e for _, e in errs]
        cells = [stats([e for s, e in errs if band(s) == b[0]]) for b in BANDS]
        a = [e for _, e in errs]
        rows.append([op, *cells, f"**{stats(a)}**", f"{100 * max(abs(e) for e in a):.0f}",
                     f"{100 * statistics.median(a):+.1f}"])
    rows.append(["all", "", "", "", f"**{stats(allerr)}**",
                 f"{100 * max(abs(e) for e in allerr):.0f}",
                 f"{100 * statistics.median(allerr):+.1f}"])
    return rows


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


HEAD = ["op", "<=64 KiB", "64 KiB-16 MiB", ">=16 MiB", "median all sizes", "max", "signed median"]


def preset_values(preset: str) -> dict:
    import yaml
    with open(ROOT / "topologies" / f"{preset}.yaml") as fh:
        return yaml.safe_load(fh)


def efficiency_of(preset: dict, op: str, ranks: int = 4) -> float:
    eff = preset["scale_up"]["efficiency"]
    if isinstance(eff, (int, float)):
        return float(eff)
    v = eff.get(op, eff.get("default"))
    if isinstance(v, dict):
        return float(v.get(ranks, v[max(v)]))
    return float(v)


def compare() -> str:
    from simulator.calibration.data import read_files
    from simulator.calibration.fit import evaluate
    from simulator.calibration.yamlio import load

    main = read(RUNS["run 2 (main)"])
    out = ["# 4 x H200: measurements against the presets and calibrations", "",
           "Generated by `python scripts/h200x4_align_and_compare.py compare`; do not edit by "
           "hand. Error "
           "= predicted / measured - 1 per (op, size), 21 sizes 1 KiB-1 GiB per rank; cells: "
           "median |error| in %. Measured: `time_us` of collectives.csv (run 2) unless "
           "said otherwise.", ""]
    # (a) presets
    for preset in PRESETS:
        pairs = {}
        for op in EVEN_OPS:
            pred = bench(preset, op)
            pairs[op] = [(int(r["bytes"]), float(r["time_us"]), pred[int(r["bytes"])])
                         for r in main if r["op"] == op]
        out += [f"## (a) `collsim bench --topology {preset} --ranks 4` (uncalibrated)", ""]
        out += md_table(HEAD, table_rows(pairs)) + [""]
    # the presets' parameters against the measurements
    out += ["## The presets' parameters against the 4-GPU measurements", "",
            "Bus bandwidth share of the NVLink bandwidth (478 GB/s on H200, 18 x 26.562 GB/s; "
            "dgx-h100: its 450 GB/s) that the presets use for 4-rank groups, against the "
            "measured bus bandwidth at 1 GiB and its median over 16 MiB-1 GiB (in-framework, "
            "run 2; run 1 within 1% at >= 256 MiB), and the small-size floor (median "
            "`time_us` over 1-64 KiB) against the presets' call overhead.", ""]
    hgx, dgx = preset_values("hgx-h200"), preset_values("dgx-h100")
    rows = []
    for op in EVEN_OPS:
        rs = [r for r in main if r["op"] == op]
        bw1g = next(float(r["busbw_GBps"]) for r in rs if int(r["bytes"]) == 1 << 30)
        bwmid = statistics.median(float(r["busbw_GBps"]) for r in rs
                                  if int(r["bytes"]) >= 16 << 20)
        floor = statistics.median(float(r["time_us"]) for r in rs if int(r["bytes"]) <= 65536)
        co = hgx["nccl"]["call_overhead"]
        pfloor = float(str(co.get(op, co["default"])).rstrip("us"))
        eh, ed = efficiency_of(hgx, op), efficiency_of(dgx, op)
        rows.append([op, f"{bw1g:.0f} ({bw1g / NVLINK_GBPS:.3f})",
                     f"{bwmid:.0f} ({bwmid / NVLINK_GBPS:.3f})",
                     f"{eh:.3f} ({eh * NVLINK_GBPS:.0f})", f"{ed:.2f} ({ed * 450:.0f})",
                     f"{floor:.1f}", f"{pfloor:.0f}"])
    out += md_table(["op", "busbw 1 GiB GB/s (share of 478)", "busbw median 16 MiB-1 GiB",
                     "hgx-h200 efficiency at 4 (GB/s)", "dgx-h100 efficiency (GB/s of 450)",
                     "measured floor us (<= 64 KiB)", "presets' call overhead us"], rows)
    out.append("")
    # (b) and (c) calibrations
    rows_main, _ = read_files([str(HERE / "collectives_aligned.csv")])
    rows_run1, _ = read_files([str(HERE / "run1" / "collectives_aligned.csv")])
    for title, cal_path, rows_eval in (
            ("(b) the 2-GPU calibration `traces/h200x2/calib_h200x2.yaml` extrapolated to 4 "
             "ranks (structural terms with n = 4, transfer correction by wire bytes)", CAL2,
             rows_main),
            ("(c) the 4-GPU calibration `calib_h200x4.yaml` (fitted on run 2) predicting "
             "run 1 (held-out run)", CAL4, rows_run1)):
        cal = load(cal_path)
        ev = evaluate(cal, rows_eval)
        out += [f"## {title}", "",
                "Aligned points only (collectives_aligned.csv: uneven all-to-all at shares 0 "
                "and 0.75). Corrected (structural in brackets):", ""]
        rws = []
        for op, t in ev["corrected"].items():
            s = ev["structural"][op]
            cells = [f"{100 * t[b[0]]['median_abs']:.1f} ({100 * s[b[0]]['median_abs']:.1f})"
                     if b[0] in t else "-" for b in BANDS]
            rws.append([op, *cells, f"**{100 * t['all']['median_abs']:.1f}** "
                                    f"({100 * s['all']['median_abs']:.1f})",
                        f"{100 * t['all']['max_abs']:.0f}",
                        f"{100 * t['all']['mean_signed']:+.1f}"])
        o, so = ev["overall"]["corrected"], ev["overall"]["structural"]
        rws.append(["all", "", "", "", f"**{100 * o['median_abs']:.1f}** "
                                        f"({100 * so['median_abs']:.1f})",
                    f"{100 * o['max_abs']:.0f}", f"{100 * o['mean_signed']:+.1f}"])
        out += md_table(HEAD[:-1] + ["signed mean"], rws) + [""]
    # the misaligned uneven points against the aligned calibration
    cal4 = load(CAL4)
    allrows, _ = read_files([str(RUNS["run 2 (main)"])])
    mis = [r for r in allrows if r.op == "moe_all_to_all"
           and not splits_aligned(r.size, r.ranks, r.share)]
    rws = []
    for share in sorted({r.share for r in mis}):
        big = [r for r in mis if r.share == share and r.size >= 16 << 20]
        ratio = [r.time_us / cal4.predict_row(r) for r in big]
        t1g = next(r.time_us for r in big if r.size == 1 << 30)
        cal_1g = cal4.predict_us("moe_all_to_all", 4, 1 << 30, share)
        rws.append([f"{share:g}", f"{t1g:.0f}", f"{cal_1g:.0f}",
                    f"{statistics.median(ratio):.2f}"])
    out += ["## Misaligned uneven all-to-alls (left out of the fit)", "",
            "Measured (run 2) against `calib_h200x4.yaml`, which interpolates between the "
            "aligned shares 0 and 0.75 (and the even all-to-all):", ""]
    out += md_table(["share_remote", "measured 1 GiB us", "calibration 1 GiB us",
                     "median measured / calibration, >= 16 MiB"], rws) + [""]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "compare"
    if what == "aligned":
        write_aligned()
    elif what == "compare":
        text = compare()
        (HERE / "compare.md").write_text(text)
        print(text)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
