#!/usr/bin/env bash
# The GPU check, ready for the day a GPU machine is lent: what PyTorch can show there without
# TensorRT or onnxruntime-gpu (neither reaches such a machine: no network, 64 MiB per command).
#
#   benchmarks/gpu_check.sh OUT_DIR [WHEELS_DIR]
#
# On the machine as it comes (its own python3 with torch and torchvision, this checkout, nothing
# installed), in under 8 minutes:
# - `e2e bench` with the host launcher on resnet50 and faster_rcnn (random weights), for torch,
#   torchscript and inductor on cuda at fp32, fp16 and bf16;
# - checks every ok row's GPU resource columns (device memory, utilisation and power from NVML)
#   and that its runner put the host<->device copies inside the timed region, as the report says;
# - prints one line per row, and leaves each run directory under OUT_DIR.
# The coordinator's own packages (typer, rich, onnx...) may be missing there: carry them as wheels
# (`pip download -d wheels typer rich pyyaml psutil nvidia-ml-py onnx jinja2 pillow pycocotools
# docker python-hcl2 uv`, about 60 MB) and name the folder; they go into a virtualenv that sees the
# machine's torch. Without a CUDA device it says so and exits 0 (the tests run it here so).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:?usage: benchmarks/gpu_check.sh OUT_DIR [WHEELS_DIR]}"
WHEELS="${2:-}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
started=$(date +%s)

why=$("$PY" - <<'EOF' 2>&1
try:
    import torch
except ImportError as e:
    print(f"no PyTorch in this python ({e})")
else:
    if not torch.cuda.is_available():
        print(f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False)")
EOF
)
if [ -n "$why" ]; then
  echo "gpu_check: skipped: $why"
  exit 0
fi

if [ -n "$WHEELS" ]; then  # the coordinator's packages, offline, beside the machine's torch
  "$PY" -m venv --system-site-packages "$OUT/venv" &&
    "$OUT/venv/bin/python" -m pip install --quiet --no-index --find-links "$WHEELS" --no-build-isolation -e "$ROOT" ||
    { echo "gpu_check: failed: could not install e2e from $WHEELS"; exit 2; }
  PY="$OUT/venv/bin/python"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
missing=$("$PY" -c "import coordinator.cli.app" 2>&1 | tail -1)
if [ -n "$missing" ]; then
  echo "gpu_check: failed: e2e cannot start with $PY: $missing (carry its wheels: see the top of this script)"
  exit 2
fi
"$PY" -c "import torch; print('gpu_check:', torch.cuda.get_device_name(0), 'torch', torch.__version__, 'CUDA', torch.version.cuda)"

status=0
for model in resnet50 faster_rcnn; do
  # a short budget per row: 18 rows, Inductor compiling 6 of them, inside 8 minutes
  "$PY" -c "from coordinator.cli.app import main; main()" bench --model "$model" --engines torch,torchscript,inductor \
    --device cuda --precision fp32,fp16,bf16 --launcher host --weights random --rounds-budget 5 \
    --out "$OUT/$model" >"$OUT/$model.log" 2>&1
  code=$?
  [ -f "$OUT/$model/report.json" ] || { echo "gpu_check: $model: e2e bench exited $code without a report"; status=1; continue; }
  "$PY" - "$OUT/$model" "$model" <<'EOF' || status=1
import json, sys
from pathlib import Path

run, model = Path(sys.argv[1]), sys.argv[2]
bad = 0
for r in json.loads((run / "report.json").read_text())["results"]:
    label = f"{model:<12} {r['engine']:<12} {r['precision']:<5}"
    if r["status"] != "ok":
        print(f"{label} {r['status']}: {r['reason'][:150]}")
        continue
    gpu = (r.get("resources") or {}).get("gpu") or {}
    problems = [name for name in ("device_memory_used_mb", "utilisation_percent_mean", "power_w_mean") if name not in gpu]
    if r.get("copy_policy") != "inside":  # the runner's own word: its timed calls copy in and out
        problems.append(f"copies: {r.get('copy_policy')!r}")
    bad += bool(problems)
    parity = r.get("parity") or {}
    print(f"{label} ok p50 {r['latency_ms']['p50']:8.2f} ms, GPU memory {gpu.get('device_memory_used_mb', 0):.0f} MB, "
          f"utilisation {gpu.get('utilisation_percent_mean', 0):.0f}%, power {gpu.get('power_w_mean', 0):.0f} W, "
          f"parity {'passed' if parity.get('passed') else 'FAILED'}" + (f"; MISSING {', '.join(problems)}" if problems else ""))
sys.exit(1 if bad else 0)
EOF
done
echo "gpu_check: $(( $(date +%s) - started )) s; run directories under $OUT"
exit $status
