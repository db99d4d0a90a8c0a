#!/usr/bin/env bash
# One pass of every GPU check, with the figures for the README (at most 10 minutes: each step has a time limit):
#   1. the parity tests on the GPU (exact mode: fp32 without TF32), same tolerances as on the CPU;
#   2. upsampling kernels: transposed convolution against its sub-pixel form, per decoder shape and dtype;
#   3. bench_inference.py --device cuda at fp32 / bf16 / fp16 over batch sizes, against the official way;
#   4. the same with the decoder torch.compile'd (--backend torch+compile, bf16, lip-pose);
#   5. batch-1 decoding replayed as CUDA graphs against eager batch 1 (--backend torch,torch+graphs:
#      speed, and the PSNR of the graph's frames against the eager ones; a failed check logs
#      "CUDA graphs are off");
#   6. bench_train.py --device cuda --amp (one step per stage).
# Needs a CUDA build of torch in the environment (README, "GPU"). Results go to $OUT (default
# res/gpu_check): a log per step and the JSON of each benchmark.
#
#   bash benchmarks/gpu_check.sh
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
. scripts/venv.sh
out="${OUT:-res/gpu_check}"
mkdir -p "$out"
status=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.log, note failures
  local name="$1" limit="$2"
  shift 2
  echo "=== $name ==="
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc="${PIPESTATUS[0]}"
  if [ "$rc" -ne 0 ]; then
    echo "!!! $name failed (exit $rc)"
    status=1
  fi
}

python - <<'EOF' || exit 1
import torch
if not torch.cuda.is_available():
    raise SystemExit(f"torch {torch.__version__} sees no CUDA GPU: install a CUDA build (README, 'GPU')")
print(torch.__version__, torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
EOF

step parity 90 env EDTALK_TEST_DEVICE=cuda python -m pytest -q tests/test_parity_generator.py

step kernels 40 python - <<'EOF'
# ms per call (median of 20) of each upsampling layer's convolution + blur, both forms, batch 16
import statistics
import torch
import torch.nn.functional as F
from networks.layers import Blur, channels_last, subpixel_weight

blur = Blur((1, 3, 3, 1), pad=(1, 1), upsample_factor=2).cuda()
def ms(fn):
    times = []
    for _ in range(22):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); fn(); end.record(); torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times[2:])
for cin, cout, size in [(512, 512, 8), (512, 512, 16), (512, 256, 32), (256, 128, 64), (128, 64, 128)]:
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x = channels_last(torch.randn(16, cin, size, size, device="cuda", dtype=dtype))
        w = torch.randn(cout, cin, 3, 3, device="cuda")
        wt, ws = channels_last(w.transpose(0, 1).to(dtype)), channels_last(subpixel_weight(w).to(dtype))
        t = ms(lambda: blur(F.conv_transpose2d(x, wt, stride=2)))
        s = ms(lambda: blur(F.pixel_shuffle(F.conv2d(x, ws, padding=1), 2)))
        print(f"{cin}->{cout} @{size} {str(dtype)[6:]:8s} transposed {t:.2f} ms, sub-pixel {s:.2f} ms")
EOF

common=(--device cuda --seconds 8 --modes audio_full,lip_pose --baseline)
step bench_inference 170 python benchmarks/bench_inference.py "${common[@]}" --backend torch --precision fp32,bf16,fp16 \
  --batches 1,4,16,32,64 --json "$out/bench_inference.json"
step bench_compile 100 python benchmarks/bench_inference.py "${common[@]}" --modes lip_pose --precision bf16 \
  --batches 16 --backend torch+compile --json "$out/bench_compile.json"
step bench_graphs 80 python benchmarks/bench_inference.py --device cuda --seconds 4 --modes lip_pose --precision bf16 \
  --batches 1 --backend torch,torch+graphs --json "$out/bench_graphs.json"
step bench_train 80 python benchmarks/bench_train.py --device cuda --amp --batch_size 8 --json "$out/bench_train.json"

echo "=== done: logs and JSON in $out (exit $status) ==="
exit "$status"
