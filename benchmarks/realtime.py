"""Benchmark of the live recognizer: end-to-end fps, per-stage ms and peak memory.

    python benchmarks/realtime.py                      # every available backend x backbone
    python benchmarks/realtime.py --frames 1000 --long-frames 10000 --backends onnx onnx-int8/fast
    python benchmarks/realtime.py --sequential         # also one run without the pipeline

For each backend variant (tensorrt where CUDA + torch-tensorrt exist; onnx, onnx-int8, torch;
`/fast`: with `--landmarks fast`) and each backbone
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
import itertools
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

    from realtime.pipeline import run_frames
    from realtime.recognizer import RecognizerConfig
    from realtime.spotting import SpottingConfig

    load0 = os.getloadavg()[0]
    backend, precision, landmarks = _variant(args.backend)
    threads = os.cpu_count() if args.sequential else None  # as moext-live --no-pipeline
    rec = Recognizer.from_checkpoint(args.checkpoint, backend=backend,
                     config=RecognizerConfig(precision=precision, landmarks=landmarks, threads=threads,
                                             spotting=SpottingConfig(transient_cue=args.cue)))
    src = VideoSource(args.video, loop=True)
    rss_warm = None
    events = []
    t0 = time.perf_counter()
    frames = run_frames(rec, src, pipelined=not args.sequential)
    for fr, r in frames:
        events += r.events
        if rec.frames == min(500, args.frames // 2):
            rss_warm = _rss_mb()
        if rec.frames >= args.frames:
            break
    frames.close()
    wall = time.perf_counter() - t0
    s = rec.summary()
    out = {
        "mode": "sequential" if args.sequential else "pipelined",
        "landmarks": landmarks,
        "cue": args.cue,
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


def _variant(name: str) -> tuple[str, str, str]:
    """"onnx-int8/fast" -> ("onnx", "int8", "fast"); "onnx" -> ("onnx", "fp32", "mesh")."""
    name, _, landmarks = name.partition("/")
    backend, _, precision = name.partition("-")
    return backend, precision or "fp32", landmarks or "mesh"


def int8_agreement(checkpoint: Path, video: Path, frames: int) -> dict:
    """Class probabilities of the fp32 and int8 ONNX graphs on the same frames' inputs.

    The onset reference and the current frame go through both graphs (features, then the
    fp32 head); every `step`-th frame is compared against the first face frame as onset.
    """
    import numpy as np

    from realtime.recognizer import Recognizer, RecognizerConfig, _softmax
    from realtime.sources import VideoSource

    recs = [Recognizer.from_checkpoint(checkpoint, backend="onnx", config=RecognizerConfig(precision=p))
            for p in ("fp32", "int8")]
    onset = [None, None]
    diffs, agree = [], []
    src = VideoSource(video)
    for i, fr in enumerate(src):
        if i >= frames:
            break
        prep = recs[0].prepare(fr.image)
        if prep.x is None:
            continue
        probs = []
        for k, rec in enumerate(recs):
            f = rec.backend.features(prep.x)
            if onset[k] is None:
                onset[k] = f
            probs.append(_softmax(rec.backend.head(onset[k], f))[0])
        diffs.append(float(np.abs(probs[0] - probs[1]).max()))
        agree.append(bool(probs[0].argmax() == probs[1].argmax()))
    src.close()
    for rec in recs:
        rec.close()
    d = np.array(diffs)
    return {"frames": len(d), "max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
            "p95_abs_diff": float(np.percentile(d, 95)), "argmax_agreement": float(np.mean(agree))}


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

    out = ["onnx", "onnx-int8", "torch", "onnx/fast", "onnx-int8/fast"]
    if choose_backend("auto").name == "tensorrt":
        out.insert(0, "tensorrt")
    return out


def run_one(video, truth, checkpoint, backend, frames, sequential=False, cue="flow") -> dict:
    cmd = [sys.executable, __file__, "--_worker", "--video", str(video), "--checkpoint",
           str(checkpoint), "--backend", backend, "--frames", str(frames), "--cue", cue]
    if sequential:
        cmd.append("--sequential")
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
        "on every frame. fps is end to end (frames / wall time from the first read to the "
        "last result). *pipelined*: decode + landmarks + flow (the spotter's optical-flow cue, "
        "with the crop warp it needs) run in a worker thread one frame ahead of classifier + "
        "spotting, and the network input (`align`) is made in whichever stage is less busy "
        "(`realtime/pipeline.py`, the `moext-live` "
        "default), so stage times overlap rather than add up; *sequential*: one thread of "
        "control. Stage ms are means per frame (under the pipeline they are measured while "
        "the other stage competes for the 2 cores). The load columns show whether other work "
        "shared the CPU (a 2-core machine is saturated at load 2). Weights are random "
        "(speed does not depend on their values).",
        "",
        "| backbone | backend | landmarks | cue | mode | frames | fps | decode | landmarks | align | flow | classifier | spotting | peak RSS MB | load before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        st = r["stage_ms"]
        lines.append(
            f"| {r['backbone']} | {r['backend']} | {r.get('landmarks', 'mesh')} | {r.get('cue', 'landmarks')} | "
            f"{r.get('mode', 'sequential')} | {r['frames']} | {r['fps']:.1f} | "
            + " | ".join(f"{st.get(k, float('nan')):.2f}" for k in
                         ("decode", "landmarks", "align", "flow", "classifier", "spotting"))
            + f" | {r['peak_rss_mb']:.0f} | {r['load_before']:.1f}/{r['load_after']:.1f} |"
        )
    lines += ["", "Long runs (memory over the stream):", "",
              "| backbone | backend | frames | fps | RSS after warm-up MB | RSS at end MB | peak RSS MB | buffer entries at end |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report["long_runs"]:
        lines.append(f"| {r['backbone']} | {r['backend']} | {r['frames']} | {r['fps']:.1f} | "
                     f"{r['rss_after_warmup_mb']:.0f} | {r['rss_end_mb']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['buffer_len_end']} |")
    ag = report.get("int8_agreement")
    if ag:
        lines += ["", "int8 against fp32 (ONNX Runtime; the onset is the video's first face, "
                  "every frame of the video is compared):", "",
                  "| checkpoint | frames | max abs prob diff | p95 | mean | same top class |",
                  "|---|---|---|---|---|---|"]
        for name, a in ag.items():
            lines.append(f"| {name} | {a['frames']} | {a['max_abs_diff']:.3f} | "
                         f"{a['p95_abs_diff']:.3f} | {a['mean_abs_diff']:.4f} | "
                         f"{a['argmax_agreement']:.3f} |")
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
    ap.add_argument("--sequential", action="store_true",
                    help="worker: no pipeline; main: also time each backbone's first backend "
                         "sequentially, for comparison")
    ap.add_argument("--agreement-frames", type=int, default=600,
                    help="frames of the video on which int8 is compared with fp32 (0: skip)")
    ap.add_argument("--cue", nargs="+", default=["flow"], choices=["flow", "landmarks"],
                    help="the spotter's transient cue (SpottingConfig.transient_cue); two "
                         "values time every variant with each, back to back")
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        args.cue = args.cue[0]
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
            for be, cue in itertools.product(backends, args.cue):
                r = run_one(args.video, truth, ck, be, args.frames, cue=cue)
                r["backbone"] = bb
                report["runs"].append(r)
                print(f"{bb:20s} {be:8s} {cue:9s} {r['fps']:7.1f} fps  " + "  ".join(
                    f"{k} {v:.2f}" for k, v in r["stage_ms"].items())
                    + f"  peak {r['peak_rss_mb']:.0f} MB  load {r['load_before']:.1f}->{r['load_after']:.1f}",
                    flush=True)
                if truth and "spotting" in r and "spotting" not in report:
                    report["spotting"] = r["spotting"]
            if args.sequential:
                r = run_one(args.video, None, ck, backends[0], args.frames, sequential=True,
                            cue=args.cue[0])
                r["backbone"] = bb
                report["runs"].append(r)
                print(f"{bb:20s} {backends[0]:8s} {r['fps']:7.1f} fps sequential", flush=True)
            if args.long_frames and (args.long_backbones is None or bb in args.long_backbones):
                r = run_one(args.video, None, ck, args.long_backend, args.long_frames,
                            cue=args.cue[0])
                r["backbone"] = bb
                report["long_runs"].append(r)
                print(f"{bb:20s} long {r['frames']} frames: {r['fps']:.1f} fps, RSS "
                      f"{r['rss_after_warmup_mb']:.0f} -> {r['rss_end_mb']:.0f} MB, peak "
                      f"{r['peak_rss_mb']:.0f} MB", flush=True)
    # int8 vs fp32 needs trained weights: random ones give near-uniform probabilities that
    # agree whatever the quantisation does. The demo weights (or --checkpoint) it is.
    if args.agreement_frames and any(b.endswith("int8") for b in backends):
        from realtime.recognizer import DEMO_WEIGHTS

        ck = args.checkpoint or DEMO_WEIGHTS
        name = (str(ck) if args.checkpoint else
                "demo weights (MobileNetV3-Small 128 px, trained on synthetic data)")
        report["int8_agreement"] = {name: int8_agreement(ck, args.video, args.agreement_frames)}
        print(f"int8 vs fp32 on {name}: {report['int8_agreement'][name]}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    for name in (f"realtime-{stamp}", "realtime-latest"):
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
        (RESULTS / f"{name}.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
