#!/usr/bin/env bash
# A newcomer's first run, checked: a fresh virtual environment, a plain non-editable
# `pip install` (no extras), no ../shared, and run from a copy of the repository that has no
# simulator/ folder, so the installed package (not the source tree) answers. Runs the
# README's first command and the main example of every subcommand; any failure fails CI.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# the copy sits two levels down so that its ../shared does not exist
mkdir -p "$tmp/clone/collsim"
repo="$tmp/clone/collsim"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    # the files a clone would have (plus new, not ignored ones), as they are in the working tree
    (cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -e "{}" && cp --parents -P "{}" "'"$repo"'"')
else
    cp -r "$src/." "$repo"
fi
test ! -e "$repo/../shared" || { echo "plain-install check: $repo/../shared exists" >&2; exit 1; }

python3 -m venv "$tmp/venv"
py="$tmp/venv/bin/python"
# the README's venv step, then the README's first command (a plain, non-editable install)
"$py" -m pip install -q "$repo" >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log" >&2; exit 1; }
"$py" -c "import importlib.util as u; assert u.find_spec('pytest') is None and u.find_spec('tqdm') is None, 'extras present'"

work="$tmp/run"
mkdir -p "$work"
cp -r "$repo/workloads" "$repo/traces" "$work/"
cd "$work"
collsim="$tmp/venv/bin/collsim"
step() { echo "+ $*" >&2; "$@" >"$tmp/out.txt" 2>"$tmp/err.txt" || {
    echo "plain-install check failed: $*" >&2; cat "$tmp/out.txt" "$tmp/err.txt" >&2; exit 1; }; }

# README, first command (python3 -m simulator ... as written, through the venv's python)
step "$py" -m simulator simulate workloads/seed004_moe_tp8_ep4_pp4_128gpus.txt
grep -q "iteration time" "$tmp/out.txt"
step "$collsim" simulate workloads/seed004_moe_tp8_ep4_pp4_128gpus.txt --topology dgx-h100 --plot "$work/seed004.png" --trace "$work/seed004.json.gz" --csv "$work/seed004.csv"
step "$collsim" bench --topology dgx-h100:64 --op all_to_all --ranks 64 --format csv
step "$collsim" generate --model mixtral-8x7b --world-size 128 --tp 4 --pp 2 --ep 8 -o "$work/mixtral.txt"
step "$collsim" simulate "$work/mixtral.txt"
cat > "$work/sweep.yaml" <<'YAML'
name: plain_install
base: {model: mixtral-8x7b, gpus: 64, global_batch: 128, seq_length: 4096}
grid: {tp: [2, 4], ep: [4, 8], pp: [1]}
YAML
step "$collsim" sweep "$work/sweep.yaml" -o "$work/sweep.csv" --jobs 2
step "$collsim" calibrate traces/h200x2/collectives_aligned.csv -o "$work/calib.yaml"
step "$collsim" bench --topology h200x2 --op all_to_all --ranks 2 --calibration "$work/calib.yaml"
# bundled data through the installed copy, from a folder with no traces/ in it
mkdir -p "$tmp/empty" && (cd "$tmp/empty" && step "$collsim" validate && test -z "$(ls -A)")
grep -q "median |error|" "$tmp/out.txt"
# ... and every case the source tree runs (a traces/ folder missing from pyproject's
# data-files would otherwise drop its cases silently)
(cd "$tmp/empty" && step "$collsim" validate --quiet --json "$tmp/v_installed.json")
(cd "$repo" && PYTHONPATH="$repo" step "$py" -m simulator validate --quiet --json "$tmp/v_source.json")
step "$py" -c "import json, sys; a, b = (json.load(open(p)) for p in sys.argv[1:]); \
names = lambda d: sorted(c['case'] + ' / ' + c['quantity'] for c in d['cases']); \
assert names(a) == names(b), sorted(set(names(b)) ^ set(names(a)))" \
    "$tmp/v_installed.json" "$tmp/v_source.json"
step "$collsim" measure --help
# the kernel sweeps the compute model is fitted on, found in the installed copy
(cd "$tmp/empty" && step "$py" -c "from simulator.generate.kernel_fit import default_paths as d; \
p = d(); assert [x.parent.name for x in p] == [f'run{i}' for i in range(1, 11)] and \
all(x.is_file() and 'share/collsim/traces' in str(x) for x in p), p")
echo "plain-install check: all commands passed on a plain install in $(($SECONDS))s" >&2
