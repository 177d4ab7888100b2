#!/usr/bin/env bash
# Reproduces the shipped demo classifier realtime/weights/demo.safetensors + demo.json.
#
# SYNTHETIC DATA ONLY: subtle FACS-like warps of one public-domain photo (scikit-image's
# astronaut) with per-subject identity variation. The weights show that the live pipeline
# runs end to end; they are not a micro-expression recogniser for real faces. Train on
# CASME II / SAMM / SMIC-HS / CAS(ME)^3 for that (README).
#
# Steps: synth -> preprocess (micro + macro) -> pretrain (§3, paper augmentation) -> loso
# (the synthetic LOSO figures, written into demo.json) -> finetune on all 10 subjects -> copy
# into realtime/weights/. The live recognizer feeds (onset crop, current crop) from real
# video, where the face moves a little and the sensor is noisy, so fine-tuning adds apex-only
# rigid jitter (1.5 px, 0.5 deg, 1 % scale on the 224-px crop, i.e. ~2 % of the inter-ocular
# distance) and sensor noise (std 2/255) to every pair.
# Sized for a 2-core CPU: MobileNetV3-Small, narrow branches, 64x64 inputs, short schedules.
#
# These are the commands of `python benchmarks/learning.py` (same WORK layout and flags), so
# with WORK pointing at a finished benchmark the data, pre-training and LOSO are reused
# (--resume) and only the final fine-tuning runs.
#
#   bash benchmarks/make_demo_weights.sh     # WORK=$TMPDIR/moext-learning-bench by default
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-${TMPDIR:-/tmp}/moext-learning-bench}"
export OMP_NUM_THREADS=1
mkdir -p "$WORK"
cd "$WORK"
T="python -m train.cli"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

MODEL="--backbone=mobilenet_v3_small --image-size=64 --branch-channels=32 --feature-dim=64 --projection-dim=16"
JITTER="--rigid-px 1.5 --rigid-deg 0.5 --rigid-scale 0.01 --sensor-noise 2"
COMMON="--lr 0.0005 --seed 0 --threads 1 --quiet"
PRE="$WORK/run-moext/pretrain"
FINE="--epochs 6 --repeats 3 --batch-size 20 $COMMON $JITTER --init $PRE/pretrained.safetensors"
RESUME() { [ -e "$1" ] && echo "--resume" || true; }

if [ ! -f micro/manifest.jsonl ]; then
  $T synth --out syn --subjects 10 --per-class 2 --frames 12 --macro-per-class 1 --macro-frames 16 \
    --long-videos 0 --seed 0 --no-progress
  $T preprocess casme2 syn --out micro --frames-per-clip 0 --no-progress
  $T preprocess macro syn/macro --out macro --frames-per-clip 0 --no-progress
fi
$T pretrain micro macro --method moext --out "$PRE" --epochs 4 --repeats 2 --batch-size 10 $COMMON $MODEL \
  $(RESUME "$PRE/train_state.pt")
$T loso micro --protocol cde --method moext --out "$WORK/run-moext/loso-pre-trained" --workers 2 $FINE \
  $(RESUME "$WORK/run-moext/loso-pre-trained/folds")
$T finetune micro --protocol cde --method moext --out "$WORK/run-moext/demo-finetune" $FINE \
  $(RESUME "$WORK/run-moext/demo-finetune/train_state.pt")

cd "$REPO"
WORK="$WORK" python - <<'EOF'
import json, os
from pathlib import Path
from moext import load_checkpoint, save_checkpoint

work = Path(os.environ["WORK"]) / "run-moext"
model, meta = load_checkpoint(work / "demo-finetune" / "classifier.safetensors", expect_kind="moext-classifier")
m = json.loads((work / "loso-pre-trained" / "metrics.json").read_text())
extra = {
    "synthetic": True,
    "note": ("Demo weights trained on SYNTHETIC micro-expressions (FACS-like warps of one public-domain "
             "photo). They show the live pipeline working; they are not a recogniser for real faces."),
    "recipe": "benchmarks/make_demo_weights.sh",
    "synthetic_loso": {"protocol": "cde", "pooled": m["pooled"], "mean_of_folds": m["mean_of_folds"],
                       "per_class": m["per_class"], "folds": len(m["folds"])},
    "finetune_run": meta["extra"]["run"],
}
out = save_checkpoint(model, Path("realtime/weights/demo.safetensors"), extra)
print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); synthetic LOSO pooled: {m['pooled']}")
EOF
