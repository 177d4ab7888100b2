#!/usr/bin/env bash
# Reproduces the shipped demo classifier realtime/weights/demo.safetensors + demo.json.
#
# SYNTHETIC DATA ONLY: subtle FACS-like warps of one public-domain photo (scikit-image's
# astronaut) with per-subject identity variation. The weights show that the live pipeline
# runs end to end; they are not a micro-expression recogniser for real faces. Train on
# CASME II / SAMM / SMIC-HS / CAS(ME)^3 for that (README).
#
# Steps: synth -> preprocess (micro + macro) -> pretrain -> loso (the synthetic LOSO figures
# written into demo.json) -> finetune on all subjects -> copy into realtime/weights/.
# The live recognizer feeds (onset crop, current crop) from real video, where the face moves a
# little and the sensor is noisy, so pre-training and fine-tuning add apex-only rigid jitter
# (about 2 % of the inter-ocular distance, a 224-px crop has an IOD of ~72 px) and sensor noise.
# Sized for a 2-core CPU (~15-20 min): MobileNetV3-Small, narrow branches, 64x64 inputs.
#
#   bash benchmarks/make_demo_weights.sh            # WORK=/tmp/moext-demo by default
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-/tmp/moext-demo}"
THREADS="${THREADS:-1}"
export OMP_NUM_THREADS="$THREADS"
mkdir -p "$WORK"
cd "$WORK"
T="moext-train"
command -v "$T" >/dev/null || T="python -m train.cli"

MODEL="--backbone mobilenet_v3_small --image-size 64 --branch-channels 32 --feature-dim 64 --projection-dim 16"
JITTER="--rigid-px 1.5 --rigid-deg 0.5 --rigid-scale 0.01 --sensor-noise 2"
COMMON="--lr 5e-4 --seed 0 --threads $THREADS --quiet"

[ -f micro/manifest.jsonl ] || {
  $T synth --out syn --subjects 10 --per-class 2 --frames 12 --macro-per-class 1 --macro-frames 16 \
    --long-videos 0 --seed 1 --no-progress
  $T preprocess casme2 syn --out micro --no-progress
  $T preprocess macro syn/macro --out macro --no-progress
}
RESUME() { [ -e "$1" ] && echo "--resume" || true; }
$T pretrain micro macro --out pretrain $MODEL $JITTER $COMMON --epochs 4 --repeats 2 --batch-size 10 \
  $(RESUME pretrain/train_state.pt)
$T loso micro --protocol cde --init pretrain/pretrained.safetensors --out loso $JITTER $COMMON \
  --epochs 8 --repeats 4 --batch-size 20 --workers 2 $(RESUME loso/folds)
$T finetune micro --protocol cde --init pretrain/pretrained.safetensors --out finetune $JITTER $COMMON \
  --epochs 8 --repeats 4 --batch-size 20 $(RESUME finetune/train_state.pt)

cd "$REPO"
WORK="$WORK" python - <<'EOF'
import json, os
from pathlib import Path
from moext import load_checkpoint, save_checkpoint

work = Path(os.environ["WORK"])
model, meta = load_checkpoint(work / "finetune" / "classifier.safetensors", expect_kind="moext-classifier")
m = json.loads((work / "loso" / "metrics.json").read_text())
extra = {
    "synthetic": True,
    "note": ("Demo weights trained on SYNTHETIC micro-expressions (FACS-like warps of one public-domain "
             "photo). They show the live pipeline working; they are not a recogniser for real faces."),
    "recipe": "benchmarks/make_demo_weights.sh",
    "synthetic_loso": {"protocol": "cde", "pooled": m["pooled"], "mean_of_folds": m["mean_of_folds"],
                       "folds": len(m["folds"])},
    "finetune_run": meta["extra"]["run"],
}
out = save_checkpoint(model, Path("realtime/weights/demo.safetensors"), extra)
print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); synthetic LOSO pooled: {m['pooled']}")
EOF
