#!/bin/bash
# Re-measure the uneven MoE all-to-all on two GPUs with whole multiples of 8 elements per
# peer (simulator/measure/bench.py:moe_splits), with the settings of run 2 (README.md), then
# a controlled pair: shares 0.1 and 0.05 with the old rounding (1-element splits, chunks at 2- or
# 4-byte offsets), then the aligned points again (run-to-run spread). Run from the
# repository root through the device tool:  bash scripts/measure_h200x2_moe_a2a_aligned.sh
# On CPU (gloo) to test the logic:  DEV=cpu SIZES=1K:64K ITERS=3 WALL=2 OUT=/tmp/o bash ...
set -o pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 \
    PYTHONUNBUFFERED=1 NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,GRAPH,ENV
DEV=${DEV:-cuda} SIZES=${SIZES:-1K:1G} ITERS=${ITERS:-100} WALL=${WALL:-30}
OUT=${OUT:?set OUT}
T0=$(date +%s); R=/tmp/moe_a2a_r; rm -rf "$R"; mkdir -p "$R"/aligned "$R"/misaligned "$R"/repeat
{ date -u; uname -r; nproc
  if command -v nvidia-smi >/dev/null; then nvidia-smi; nvidia-smi topo -m; nvidia-smi nvlink -s
      nvidia-smi -q -d CLOCK,POWER,PERFORMANCE | head -80; fi
  python3 -c 'import sys,torch;print("python",sys.version.split()[0]);print("torch",torch.__version__,"cuda",torch.version.cuda,"gpus",torch.cuda.device_count())'
} > "$R"/env.txt 2>&1
# the measuring package alone (the rest of the tree is not imported); a second copy with the
# old rounding for the controlled pair
for d in iso mis; do rm -rf /tmp/$d; mkdir -p /tmp/$d/simulator; cp -r simulator/measure /tmp/$d/simulator/; done
sed -i 's/^    align = 8$/    align = 1/' /tmp/mis/simulator/measure/bench.py
grep -q '^    align = 1$' /tmp/mis/simulator/measure/bench.py || { echo "sed failed"; exit 1; }
A="--phases moe_a2a --device $DEV --sizes $SIZES --iters $ITERS --wall-iters $WALL --time-budget-s 100"
ALL=1,0.75,0.5,0.25,0.1,0.05,0
rc=0
# with 2 ranks only shares 0.05 and 0.1 rounded to odd counts under the old code
for run in aligned:iso:$ALL misaligned:mis:0.1,0.05 repeat:iso:$ALL; do
    IFS=: read -r name tree shares <<< "$run"
    (cd /tmp/$tree && timeout 150 python3 -m simulator.measure.cli --out "$R"/$name $A --shares $shares 2>&1 \
        | tee "$R"/$name/log.txt | grep -v 'NCCL INFO'); r=$?; [ $r = 0 ] || rc=$r
    echo "$name done rc=$r at $(( $(date +%s) - T0 )) s"
done
cp "$R"/aligned/collectives.csv "$OUT"/moe_all_to_all_aligned.csv
cp "$R"/misaligned/collectives.csv "$OUT"/moe_all_to_all_misaligned_control.csv
cp "$R"/repeat/collectives.csv "$OUT"/moe_all_to_all_aligned_repeat.csv
cp "$R"/env.txt "$R"/aligned/measure_env.txt "$OUT"/
tar czf "$OUT"/logs.tgz -C "$R" aligned/log.txt misaligned/log.txt repeat/log.txt \
    misaligned/measure_env.txt repeat/measure_env.txt
echo "total $(( $(date +%s) - T0 )) s rc=$rc"
exit $rc
