#!/usr/bin/env bash
# The `bench infer` table on a CUDA GPU: ResNet-50 and EfficientNet-Lite0 at batch 256 (BATCH), every
# runtime the GPU offers (torch fp32, torch bf16 + channels_last, torch-compile with CUDA graphs,
# ONNX Runtime when onnxruntime-gpu is installed) against torch fp32, with the GPU's matmul peak.
# One command, a few minutes on a datacenter GPU; results in benchmarks/results/bench_infer_*_cuda.json.
#   bash benchmarks/gpu_infer.sh            # or BATCH=8 DEVICE=cpu bash benchmarks/gpu_infer.sh to try it on a CPU
set -euo pipefail
BATCH="${BATCH:-256}"
DEVICE="${DEVICE:-cuda}"
RESLAB="${RESLAB:-reslab}"
for model in resnet50 efficientnet_lite0; do
    timeout 600 $RESLAB bench infer "$model" --batch-size "$BATCH" --device "$DEVICE" --rounds 5
done
