"""Write collectives_aligned.csv: what the bundled 2-GPU calibrations are fitted on.

Run from the repository root (no GPU needed)::

    python scripts/h200x2_build_aligned_collectives.py
    collsim calibrate traces/h200x2/collectives_aligned.csv -o traces/h200x2/calib_h200x2.yaml
    collsim calibrate traces/h200x2/collectives_aligned.csv --ops all_to_all,moe_all_to_all \\
        --test traces/h200x2/collectives_aligned.csv -o traces/h200x2/calib_h200x2_a2a_only.yaml

collectives.csv (run 2) as measured, except its uneven all-to-all (``moe_all_to_all``)
points whose split offsets were not 16-byte aligned: with 2 ranks the old ``moe_splits``
(before commit 'measure: uneven all-to-all splits...') rounded shares 0.05 and 0.1 to counts
that are not multiples of 8 bf16 elements, at every size, so those two series measured
NCCL's misaligned copies (2.5x slower at 1 GiB than the same share aligned: the controlled
pair in moe_a2a_rerun/). Shares 0, 0.25, 0.5, 0.75 and 1 had aligned splits under both codes
and are kept. The two series are replaced by the aligned re-measurement
(moe_all_to_all_aligned.csv) from 64 MiB up: there the re-measurement reproduces run 2 on
the shares both have (median ratio 1.000, within 2%); below, its times are its session's
host floor (up to 1 MiB: median 59 us per call against 31 us in run 2, host time per call
median 39 us against 22 us), which would give shares 0.05 and 0.1 a floor twice the other
shares'.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "traces" / "h200x2"   # the measurements it reads and the file it writes
SOURCE = HERE / "collectives.csv"
ALIGNED = HERE / "moe_all_to_all_aligned.csv"
OUT = HERE / "collectives_aligned.csv"
ALIGN = 16              # bytes
ELEM = {"bf16": 2, "fp16": 2, "fp32": 4}
MIN_BYTES = 64 << 20    # re-measured points used from this size (see above)
# The header names where this script lived when it wrote the file: the bundled calibrations
# record the file's sha256, so the committed bytes (header included) stay as they were.
FORMER_PATH = "traces/h200x2/build_aligned.py"


def old_moe_splits(n: int, world: int, rank: int, share: float) -> list[int]:
    """The splits run 2 was measured with (simulator/measure/bench.py before the fix)."""
    per_peer = min(int(round(n * share / (world - 1))), n // (world - 1))
    splits = [per_peer] * world
    splits[rank] = n - per_peer * (world - 1)
    return splits


def old_splits_aligned(r: dict) -> bool:
    if r["op"] != "moe_all_to_all":
        return True
    elem = ELEM.get(r["dtype"], 2)
    world, n = int(r["ranks"]), int(r["bytes"]) // elem
    for rank in range(world):
        off = 0
        for count in old_moe_splits(n, world, rank, float(r["share_remote"])):
            if (off * elem) % ALIGN:
                return False
            off += count
    return True


def _lines_and_rows(path: Path) -> tuple[str, list[tuple[str, dict]]]:
    with open(path, newline="") as fh:
        lines = [ln for ln in fh.read().splitlines(keepends=True) if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    return lines[0], list(zip(lines[1:], rows))


def build() -> tuple[list[str], dict]:
    head, src = _lines_and_rows(SOURCE)
    head2, new = _lines_and_rows(ALIGNED)
    if head2 != head:
        raise SystemExit(f"{ALIGNED.name}: columns differ from {SOURCE.name}")
    dropped = sorted({r["share_remote"] for _, r in src if not old_splits_aligned(r)}, key=float)
    kept = [ln for ln, r in src if old_splits_aligned(r)]
    added = [ln for ln, r in new if r["op"] == "moe_all_to_all" and r["share_remote"] in dropped
             and int(r["bytes"]) >= MIN_BYTES]
    header = (f"# {SOURCE.name} of this folder with its moe_all_to_all points whose split offsets "
              f"were not {ALIGN}-byte aligned (shares {', '.join(dropped)}, every size)\n"
              f"# replaced by those shares of {ALIGNED.name} (aligned splits) from "
              f"{MIN_BYTES >> 20} MiB; written by {FORMER_PATH} (see README.md)\n")
    return [header, head, *kept, *added], {"dropped_shares": dropped, "kept": len(kept),
                                            "added": len(added), "source_rows": len(src)}


def main() -> int:
    lines, info = build()
    with open(OUT, "w", newline="") as fh:
        fh.writelines(lines)
    print(f"wrote {OUT.relative_to(ROOT)}: {info['kept']} of {info['source_rows']} rows of "
          f"{SOURCE.name} (dropped shares {', '.join(info['dropped_shares'])}) + "
          f"{info['added']} re-measured rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
