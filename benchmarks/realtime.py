"""Benchmark of the live recognizer: end-to-end fps, per-stage ms and peak memory.

    python benchmarks/realtime.py                      # every available backend x backbone
    python benchmarks/realtime.py --frames 1000 --long-frames 10000 --backends onnx

For each backend (tensorrt where CUDA + torch-tensorrt exist, onnx, torch) and each backbone
(the paper's ResNet-18 at 224x224, and the fast MobileNetV3-Small), the recognizer runs on a
640x360 real-face video (default: the shipped demo video, a real photo with generated
motions), looped, with the classifier on every frame; each run is a fresh subprocess so that
its peak memory is its own. One long run per backbone (>= 10,000 frames) records peak
memory and whether memory grows. The spotting figures (MEGC rule, IoU >= 0.5) come from the
video's ground truth (synthetic: they say nothing about real micro-expressions).

Weights are random with the right architecture (speed does not depend on their values),
unless --checkpoint is given. Results: printed, and saved as JSON + Markdown under
benchmarks/results/. The CPU may be shared with other work while this runs: the load
average before and after each run is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO_VIDEO = ROOT / "realtime" / "assets" / "demo.mp4"
RESULTS = ROOT / "benchmarks" / "results"

# The two backbones of the issue: the paper's network, and the fast CPU one.
BACKBONES = {
    "resnet18": dict(backbone="resnet18", image_size=224, branch_channels=512, feature_dim=512),
    "mobilenet_v3_small": dict(backbone="mobilenet_v3_small", image_size=224,
                               branch_channels=128, feature_dim=256),
}


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(args: argparse.Namespace) -> None:
    """One run in this process; prints one JSON line."""
    from realtime.recognizer import Recognizer
    from realtime.sources import VideoSource

    load0 = os.getloadavg()[0]
    rec = Recognizer(args.checkpoint, backend=args.backend)
    src = VideoSource(args.video, loop=True)
    rss_warm = None
    events = []
    t0 = time.perf_counter()
    for fr in src:
        rec.add_timing("decode", fr.decode_ms)
        r = rec.process(fr.image, fr.timestamp_ms)
        events += r.events
        if rec.frames == min(500, args.frames // 2):
            rss_warm = _rss_mb()
        if rec.frames >= args.frames:
            break
    wall = time.perf_counter() - t0
    s = rec.summary()
    out = {
        "backend": rec.backend_choice.name,
        "backend_reason": rec.backend_choice.reason,
        "frames": s.frames,
        "faces_found": s.faces_found,
        "events": s.events,
        "fps": s.frames / wall,
        "stage_ms": s.stage_ms,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_warmup_mb": rss_warm,
        "rss_end_mb": _rss_mb(),
        "buffer_len_end": len(rec.buffer),
        "load_before": load0,
        "load_after": os.getloadavg()[0],
    }
    if args.truth:
        out["spotting"] = spotting_scores(events, json.loads(Path(args.truth).read_text()), s.frames)
    print("RESULT " + json.dumps(out))


def spotting_scores(events, truth: dict, frames: int) -> dict:
    from realtime.spotting import interval_iou, score_intervals

    n = truth["num_frames"]
    res = {}
    for kind in ("micro", "macro"):
        # Only the first pass over the looped video is scored against its ground truth.
        pred = [(e.onset_index, e.offset_index) for e in events if e.kind == kind and e.offset_index < n]
        gt = [(g["onset_frame"], g["offset_frame"]) for g in truth["events"] if g["kind"] == kind]
        res[kind] = score_intervals(pred, gt).to_dict()
    gt_macro = [(g["onset_frame"], g["offset_frame"]) for g in truth["events"] if g["kind"] == "macro"]
    found = [e for e in events if e.offset_index < n and any(
        interval_iou((e.onset_index, e.offset_index), m) >= 0.5 for m in gt_macro)]
    res["macro_found_reported_as_macro"] = (
        sum(e.kind == "macro" for e in found) / len(found) if found else None)
    turns = [g for g in truth["events"] if g["kind"] == "head_turn"]
    res["events_inside_head_turns"] = sum(
        1 for e in events if e.offset_index < n
        and any(g["onset_frame"] <= e.apex_index <= g["offset_frame"] for g in turns))
    res["head_turns"] = len(turns)
    return res


def make_checkpoint(name: str, folder: Path) -> Path:
    from moext import ModelConfig, MoExtClassifier, save_checkpoint

    cfg = ModelConfig(**BACKBONES[name])
    return save_checkpoint(MoExtClassifier(cfg), folder / f"{name}.safetensors",
                           extra={"note": "random weights, for timing only"})


def available_backends() -> list[str]:
    from realtime.backends import choose_backend

    out = ["onnx", "torch"]
    if choose_backend("auto").name == "tensorrt":
        out.insert(0, "tensorrt")
    return out


def run_one(video, truth, checkpoint, backend, frames) -> dict:
    cmd = [sys.executable, __file__, "--_worker", "--video", str(video), "--checkpoint",
           str(checkpoint), "--backend", backend, "--frames", str(frames)]
    if truth:
        cmd += ["--truth", str(truth)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark run failed ({' '.join(cmd)}):\n{p.stderr[-3000:]}")


def to_markdown(report: dict) -> str:
    lines = [
        f"# moext-live benchmark ({report['date']})",
        "",
        f"Machine: {report['machine']}; video: {report['video']} (640x360, looped); classifier "
        "on every frame. fps is end to end (decode + landmarks + align + classifier + "
        "spotting, one thread of control). The CPU was shared with other work: see the load "
        "columns (a 2-core machine is saturated at load 2).",
        "",
        "| backbone | backend | frames | fps | decode | landmarks | align | classifier | spotting | peak RSS MB | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        st = r["stage_ms"]
        lines.append(
            f"| {r['backbone']} | {r['backend']} | {r['frames']} | {r['fps']:.1f} | "
            + " | ".join(f"{st.get(k, float('nan')):.2f}" for k in
                         ("decode", "landmarks", "align", "classifier", "spotting"))
            + f" | {r['peak_rss_mb']:.0f} | {r['load_before']:.1f}/{r['load_after']:.1f} |"
        )
    lines += ["", "Long runs (memory over the stream):", "",
              "| backbone | backend | frames | fps | RSS after warm-up MB | RSS at end MB | peak RSS MB | buffer entries at end |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report["long_runs"]:
        lines.append(f"| {r['backbone']} | {r['backend']} | {r['frames']} | {r['fps']:.1f} | "
                     f"{r['rss_after_warmup_mb']:.0f} | {r['rss_end_mb']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['buffer_len_end']} |")
    sp = report.get("spotting")
    if sp:
        lines += ["", "Spotting on the video's ground truth (synthetic data: MEGC rule, IoU >= 0.5):", ""]
        for kind in ("micro", "macro"):
            d = sp[kind]
            lines.append(f"- {kind}: TP {d['tp']} FP {d['fp']} FN {d['fn']} — precision "
                         f"{d['precision']:.2f}, recall {d['recall']:.2f}, F1 {d['f1']:.2f}")
        lines.append(f"- macro found and reported as macro: {sp['macro_found_reported_as_macro']}")
        lines.append(f"- events inside the {sp['head_turns']} head turns: {sp['events_inside_head_turns']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=DEMO_VIDEO)
    ap.add_argument("--truth", type=Path, default=None,
                    help="ground-truth JSON of the video (default: beside it, if present)")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--backends", nargs="*", default=None)
    ap.add_argument("--backbones", nargs="*", default=list(BACKBONES))
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--long-frames", type=int, default=10000)
    ap.add_argument("--long-backend", default="onnx")
    ap.add_argument("--long-backbones", nargs="*", default=None,
                    help="backbones that get the long memory run (default: all)")
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        return worker(args)

    if not args.video.is_file():
        sys.exit(f"benchmark: video {args.video} not found; pass --video FILE (640x360 face video)")
    truth = args.truth or (args.video.with_suffix(".json") if args.video.with_suffix(".json").is_file() else None)
    backends = args.backends or available_backends()
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"{platform.system()} {platform.release()}",
        "video": str(args.video.relative_to(ROOT) if args.video.is_relative_to(ROOT) else args.video),
        "runs": [], "long_runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for bb in args.backbones:
            ck = args.checkpoint or make_checkpoint(bb, Path(tmp))
            for be in backends:
                r = run_one(args.video, truth, ck, be, args.frames)
                r["backbone"] = bb
                report["runs"].append(r)
                print(f"{bb:20s} {be:8s} {r['fps']:7.1f} fps  " + "  ".join(
                    f"{k} {v:.2f}" for k, v in r["stage_ms"].items())
                    + f"  peak {r['peak_rss_mb']:.0f} MB  load {r['load_before']:.1f}->{r['load_after']:.1f}",
                    flush=True)
                if truth and "spotting" in r and "spotting" not in report:
                    report["spotting"] = r["spotting"]
            if args.long_frames and (args.long_backbones is None or bb in args.long_backbones):
                r = run_one(args.video, None, ck, args.long_backend, args.long_frames)
                r["backbone"] = bb
                report["long_runs"].append(r)
                print(f"{bb:20s} long {r['frames']} frames: {r['fps']:.1f} fps, RSS "
                      f"{r['rss_after_warmup_mb']:.0f} -> {r['rss_end_mb']:.0f} MB, peak "
                      f"{r['peak_rss_mb']:.0f} MB", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    for name in (f"realtime-{stamp}", "realtime-latest"):
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
        (RESULTS / f"{name}.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
