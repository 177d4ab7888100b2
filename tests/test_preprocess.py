"""`preprocess`: aligned crops + manifest, resumable, bad samples skipped and listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from _data_helpers import synth_set
from moext.face import FaceMesh
from moext.preprocess import CROP_SIZE
from train.datasets.cache import CacheError, PreprocessConfig, preprocess_dataset
from train.manifest import MANIFEST, ManifestError, load_rows, read_manifest

FIELDS = {"dataset", "subject", "sample", "emotion", "kind", "onset_index", "apex_index", "offset_index",
          "onset", "apex", "frames", "source", "warnings", "status", "reason"}


@pytest.fixture()
def casme(tmp_path) -> Path:
    """A private copy of the shared synthetic CASME II set (tests change files in it)."""
    src = synth_set()
    dst = tmp_path / "casme"
    shutil.copytree(src, dst)
    return dst


def test_crops_and_manifest(casme, tmp_path):
    cache = tmp_path / "cache"
    s = preprocess_dataset("casme2", casme, cache, PreprocessConfig(frames_per_clip=3), progress=False)
    assert (s.total, s.ok, s.skipped) == (6, 6, [])
    rows = load_rows(cache)
    assert len(rows) == 6 and all(FIELDS <= set(r) for r in rows)
    truth = {(m["subject"], m["sample"]): m for m in json.loads((casme / "synth_truth.json").read_text())["micro"]}
    for r in rows:
        t = truth[(r["subject"], r["sample"])]
        first = t["first_frame_number"]
        assert (r["dataset"], r["kind"], r["status"], r["reason"]) == ("casme2", "micro", "ok", None)
        assert r["emotion"] == t["emotion"]
        assert (r["onset_index"], r["apex_index"], r["offset_index"]) == (first, first + t["apex"], first + t["offset"])
        assert r["frame_indices"] == [first, first + 1, first + 2] and len(r["frames"]) == 3
        assert r["source"][0] == str(casme / "CASME2_RAW_selected" / r["subject"] / r["sample"] / f"img{first}.jpg")
        for p in [r["onset"], r["apex"], *r["frames"]]:
            assert not Path(p).is_absolute()
            img = cv2.imread(str(cache / p))
            assert img.shape == (CROP_SIZE, CROP_SIZE, 3)
    ok = read_manifest(cache)
    assert len(ok) == 6 and Path(ok[0]["onset"]).is_absolute() and Path(ok[0]["frames"][0]).is_file()
    # The onset crop is what align_face gives on the onset frame: eyes near the canonical spots.
    with FaceMesh(video_mode=False) as mesh:
        det = mesh.detect(cv2.imread(ok[0]["onset"]))
    from moext.face import CANONICAL_LEFT_EYE
    from moext.geometry import eye_centres

    assert np.linalg.norm(eye_centres(det.landmarks)[1] - np.array(CANONICAL_LEFT_EYE) * CROP_SIZE) < 8


def test_bad_samples_are_skipped_with_reasons(casme, tmp_path):
    tree = casme / "CASME2_RAW_selected"
    clips = sorted(p for p in tree.glob("*/*"))
    # 1: a missing apex frame; 2: a corrupt onset image; 3: a frame without a face
    truth = {(m["subject"], m["sample"]): m for m in json.loads((casme / "synth_truth.json").read_text())["micro"]}

    def frame(clip, which):
        t = truth[(clip.parent.name, clip.name)]
        return clip / f"img{t['first_frame_number'] + t[which]}.jpg"

    frame(clips[0], "apex").unlink()
    frame(clips[1], "onset").write_bytes(b"not a jpeg")
    cv2.imwrite(str(frame(clips[2], "apex")), np.full((168, 224, 3), 90, np.uint8))
    s = preprocess_dataset("casme2", casme, tmp_path / "cache", progress=False)
    assert s.ok == 3 and len(s.skipped) == 3
    reasons = dict(s.skipped)
    k0, k1, k2 = (f"casme2/{c.parent.name}/{c.name}" for c in clips[:3])
    assert "missing" in reasons[k0] and frame(clips[0], "apex").name in reasons[k0]
    assert "cannot read" in reasons[k1] and frame(clips[1], "onset").name in reasons[k1]
    assert "no face" in reasons[k2] and frame(clips[2], "apex").name in reasons[k2]
    rows = load_rows(tmp_path / "cache")
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 3 and all(r["reason"] and r["onset"] is None for r in skipped)
    assert len(read_manifest(tmp_path / "cache")) == 3


def test_killed_run_resumes_without_duplicates_or_temp_files(casme, tmp_path):
    cache = tmp_path / "cache"
    seen = []

    def die_after_two(row):
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        preprocess_dataset("casme2", casme, cache, progress=False, on_row=die_after_two)
    assert len(load_rows(cache)) == 2
    # a torn last line and a temp file, as a kill during a write would leave
    stale = cache / "crops" / "casme2" / "sub02" / "EP09_09" / ".apex_5.png.tmp123"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a png")
    with open(cache / MANIFEST, "a") as fh:
        fh.write('{"dataset": "casme2", "subj')
    assert len(read_manifest(cache)) == 2
    s = preprocess_dataset("casme2", casme, cache, progress=False)
    assert (s.ok, s.resumed) == (6, 2)
    rows = load_rows(cache)
    assert len(rows) == 6 and len({(r["subject"], r["sample"]) for r in rows}) == 6
    assert not [p for p in cache.rglob("*") if ".tmp" in p.name]
    # a third run does nothing new
    assert preprocess_dataset("casme2", casme, cache, progress=False).resumed == 6


def test_other_settings_on_the_same_cache_are_refused(casme, tmp_path):
    cache = tmp_path / "cache"
    preprocess_dataset("casme2", casme, cache, progress=False)
    with pytest.raises(CacheError, match="frames_per_clip"):
        preprocess_dataset("casme2", casme, cache, PreprocessConfig(frames_per_clip=2), progress=False)
    s = preprocess_dataset("casme2", casme, cache, PreprocessConfig(frames_per_clip=2, align="onset"),
                           restart=True, progress=False)
    assert s.resumed == 0 and all(len(r["frames"]) == 2 for r in load_rows(cache))


def test_macro_clips_use_the_pseudo_apex(tmp_path):
    src = synth_set(macro_per_class=1, per_class=0, subjects=1)
    s = preprocess_dataset("macro", src / "macro", tmp_path / "cache", PreprocessConfig(frames_per_clip=8),
                           progress=False)
    assert (s.total, s.ok) == (3, 3)
    for r in read_manifest(tmp_path / "cache"):
        assert r["kind"] == "macro" and r["apex_index"] == r["onset_index"] + 5 == 6
        assert r["frame_indices"] == list(range(1, 9)) and r["emotion"] in {"disgust", "happiness", "surprise"}


def test_read_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.jsonl"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("")
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(ManifestError, match="line 2"):
        read_manifest(tmp_path)
