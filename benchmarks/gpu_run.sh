#!/usr/bin/env bash
# The GPU measurement of issue 6 in one call (~8 min on one H100 or H200): the matmul ceiling,
# the plain and the optimized SePPO update (SD-1.5 UNet, random weights, 16 pairs, 20-step DDIM,
# guidance 7.5) in one process, memory probes (LoRA and full, per-device batch 1 and 4, pool of
# 7 on the CPU), then lever trials while the time budget lasts. Writes $OUT/bench.json,
# $OUT/summary.md and $OUT/bench.log; prints the markdown table last.
#
# Installs nothing except the wheels carried in .whl/ (diffusers; see benchmarks/README.md).
# Run from the repository root:  SEPPO_COMMIT=<hash> bash benchmarks/gpu_run.sh
# BUDGET_S (default 420) bounds the benchmark itself; sections that would pass it are skipped
# and listed as skipped in the JSON and the table.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-benchmarks/out-gpu}
BUDGET_S=${BUDGET_S:-420}
mkdir -p "$OUT"
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-cache  # compile artifacts stay off the repository

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "gpu_run: installing the carried wheels failed (is .whl in carry?)"; exit 1; }
export PYTHONPATH=/tmp/site:src

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.txt"
python3 -c "import sys; sys.path.insert(0, 'benchmarks'); import torch, diffusers, transformers, peft, accelerate, bench_update; \
print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, \
'peft', peft.__version__, 'cuda', torch.cuda.is_available())" || exit 1

# Lever trials (train.* config fields), most useful first; each runs only if the budget still holds it:
#   compile=reference                   train.compile: the reference UNet (the generation graph, ~60 s)
#   mode=lora                           train.mode: LoRA, an adapter swap instead of a frozen copy
#   mixed_precision=no                  fp32 everywhere (slow: near the end)
#   compile=all                         also the training step (~180 s more to compile: usually skipped)
timeout $((BUDGET_S + 90)) python3 benchmarks/bench_update.py \
  --preset sd15 --pairs 16 --steps 20 --guidance 7.5 --micro-pairs auto --repeats 3 --warmup 1 \
  --mixed-precision bf16 --mode full --compile none \
  --memory-modes lora full --memory-batches 1 4 \
  --try compile=reference mode=lora mixed_precision=no compile=all \
  --budget-s "$BUDGET_S" --commit "${SEPPO_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}" \
  --out "$OUT" 2>&1 | grep -v -e "clip_sample" -e "deprecate(" | tee "$OUT/bench.log"
status=${PIPESTATUS[0]}

python3 - "$OUT" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
data = json.loads((out / "bench.json").read_text())
sys.path.insert(0, "benchmarks")
from bench_update import markdown
table = markdown(data)  # rebuilt from the JSON, so a run cut short still gets its table
(out / "summary.md").write_text(table + "\n")
print("\n" + table)
EOF
exit "$status"
