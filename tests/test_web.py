"""The browser demo end to end: Debian's Chromium driven by Playwright against the real
server (`python -m realtime.web_cli`, i.e. `moext-live web`) on 127.0.0.1.

The webcam is Chromium's fake capture device playing a generated y4m clip (the astronaut
photo with one synthetic micro-expression, `tests/_browser.py`), so the frames reach the
server exactly as a real webcam's would: captured by the page, JPEG-encoded, streamed.
Synthetic data: these tests prove the plumbing, not recognition accuracy on real faces.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from _browser import (
    REPO,
    chromium,
    chromiums,
    expression_frames,
    fit_known_answer_classifier,
    require_browser,
    save_artifact,
    web_server,
    write_video,
    write_y4m,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLS = "positive"  # the first expression of the live clip
# The live clip plays these micro-expressions in turn, one every 3 s (Chromium loops it):
# the events table must show them row by row, each a micro with its class, in this order.
LIVE_SCHEDULE = ("positive", "surprise", "negative")
VIDEO_CLS = "surprise"  # the upload test's: a different class, so a constant label fails
FPS = 30.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny classifier fitted to the generated face's three classes (`_browser`): its
    answer for the test clips is known, so the tests can demand the right class. The
    shipped demo weights cannot serve here: on these clips they answer "surprise" for every
    class (their recorded synthetic LOSO UF1 is 0.33, chance)."""
    return fit_known_answer_classifier(tmp_path_factory.mktemp("ckpt") / "known.safetensors")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    """A 4 s clip: still face, one `CLS` micro-expression (0.4 s, 2.5 % IOD) at 2 s; as y4m
    for the fake webcam (Chromium loops it); a `VIDEO_CLS` one as webm for the upload; and
    a no-face y4m."""
    d = tmp_path_factory.mktemp("clip")
    frames, truth = [], None
    for cls in LIVE_SCHEDULE:
        part, t = expression_frames(cls, fps=FPS, seconds=3.0, onset_s=1.5, duration_s=0.4, peak_iod=0.025)
        frames += part
        truth = truth or t
    vframes, vtruth = expression_frames(VIDEO_CLS, fps=FPS, seconds=4.0, onset_s=2.0, duration_s=0.4,
                                        peak_iod=0.025)
    blank = [np.full_like(frames[0], 128) for _ in range(8)]
    return {
        "y4m": write_y4m(d / "face.y4m", frames, FPS),
        "video": write_video(d / "surprise.webm", vframes, FPS),
        "video_truth": vtruth,
        "noface_y4m": write_y4m(d / "noface.y4m", blank, FPS),
        "frames": len(frames),
        "video_frames": len(vframes),
        "truth": truth,
        "dir": d,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint):
    require_browser()
    tmp = tmp_path_factory.mktemp("server")
    # A small upload limit so the test can show the refusal; the clip is far below it.
    with web_server(tmp, checkpoint, "--max-file-size", "2mb", "--concurrency", "2") as srv:
        yield srv
    # Stopped: Gradio's shutdown (delete_cache) and session ends leave no face data behind.
    left = [p for p in srv.cache.rglob("*") if p.is_file()]
    assert not left, f"files left in the server's cache after shutdown: {left}"


def _start_webcam(page) -> None:
    page.get_by_text("Click to Access Webcam").click()
    page.get_by_role("button", name="capture photo").click()  # Gradio's "Record" button


def _status(page) -> str:
    return page.locator("#moext-status").inner_text()


def _frames_seen(page) -> int:
    m = re.search(r"frame (\d+)", _status(page))
    return int(m.group(1)) if m else 0


def _event_rows(page, table: str) -> list[list[str]]:
    rows = []
    # Gradio 6's Dataframe is an ARIA grid (a virtualised table): rows and gridcells.
    for tr in page.locator(f"{table} [role=row]").all():
        cells = [c.strip() for c in tr.locator("[role=gridcell]").all_inner_texts()]
        if len(cells) >= 7 and cells[6]:
            rows.append(cells)
    return rows


def _wait_for_event(page, table: str, timeout_s: float) -> list[list[str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = _event_rows(page, table)
        if rows:
            return rows
        page.wait_for_timeout(1000)
    raise AssertionError(f"no event in {table} after {timeout_s:.0f} s; status: {_status(page)!r}")


def _class_names(ckpt: Path) -> list[str]:
    return json.loads(ckpt.with_suffix(".json").read_text())["config"]["class_names"]


def _download(page, selector: str, dest: Path) -> str:
    with page.expect_download() as info:
        page.locator(selector).click()
    info.value.save_as(dest)
    return dest.read_text()


def test_live_webcam_events_table_row_by_row(server, clip, checkpoint, tmp_path):
    with chromium(clip["y4m"]) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(server.url)
        _start_webcam(page)
        # Chromium loops the 9 s clip: three micro-expressions, one every 3 s, seen at the
        # server's rate. Wait for four rows: at least one whole cycle.
        deadline = time.monotonic() + 300
        rows = []
        while time.monotonic() < deadline and len(rows) < 4:
            page.wait_for_timeout(2000)
            rows = _event_rows(page, "#moext-events")
        assert len(rows) >= 4, f"only {len(rows)} events in 300 s: {rows}; status {_status(page)!r}"
        # Row by row: every event is a micro-expression at one of the clip's 3 s slots (the
        # loop starts wherever the webcam picked it up: the first row fixes the phase), with
        # the class the schedule plays in that slot. On a loaded 2-core machine the server
        # processes 9-15 of the 30 fps and drops the rest, and then misses some slots (measured:
        # 4 of 6 slots at 10 fps in a clean `.ci/run`, 4 of 8 at 15 fps beside a training
        # process; README, Status). The test asks for 2 of every 3 slots between the first
        # and the last row, and for every row to be right: a floor on what the web path does
        # on such a machine, not a target.
        kinds = [r[5] for r in rows]
        classes = [r[6] for r in rows]
        why = f"{rows}; status {_status(page)!r}"
        assert kinds == ["micro"] * len(rows), why
        onsets = [float(r[1]) for r in rows]
        slots = [(t - onsets[0]) / 3.0 for t in onsets]
        assert all(abs(k - round(k)) < 0.2 for k in slots), f"events off the clip's 3 s slots {slots}: {why}"
        assert all(round(b) > round(a) for a, b in zip(slots, slots[1:])), f"two events in one slot {slots}: {why}"
        start = LIVE_SCHEDULE.index(classes[0])
        want = [LIVE_SCHEDULE[(start + round(k)) % len(LIVE_SCHEDULE)] for k in slots]
        assert classes == want, f"classes {classes}, expected the schedule {want}: {why}"
        spanned = round(slots[-1]) + 1
        assert 3 * len(rows) >= 2 * spanned, f"{len(rows)} events over {spanned} slots: {why}"
        label, kind = rows[0][6], rows[0][5]
        # The page shows what the recognizer found: a class distribution, the curve, thumbnails.
        label_text = page.locator("#moext-label").inner_text()
        assert any(c in label_text for c in _class_names(checkpoint)), label_text
        assert page.locator("#moext-curve img").count() == 1
        assert page.locator("#moext-thumbs img.moext-onset").count() == 1
        assert page.locator("#moext-thumbs img.moext-apex").count() == 1
        status = _status(page)
        assert "fps" in status and _frames_seen(page) > 10
        text = _download(page, "#moext-events-csv", tmp_path / "events.csv")
        got = list(csv.DictReader(io.StringIO(text)))
        assert got and got[0]["label"] == label and got[0]["kind"] == kind
        shot = tmp_path / "web-live.png"
        page.screenshot(path=str(shot), full_page=True)
        save_artifact(shot, "web-live.png")
        if os.environ.get("MOEXT_UPDATE_SCREENSHOTS") == "1":  # refresh the README's picture
            shutil.copyfile(shot, REPO / "docs" / "screenshot-web.png")
        print(f"live: first event {kind} {label}; status {status!r}")


def test_video_upload_gives_events_and_csv(server, clip, checkpoint, tmp_path):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(server.url)
        page.get_by_role("tab", name="Video").click()
        # Above the server's 2 MB limit: refused with a message, before any processing.
        big = tmp_path / "too-big.mp4"
        big.write_bytes(b"\0" * 3_000_000)
        page.locator("#moext-video input[type=file]").set_input_files(str(big))
        # Gradio 6.31 says: 'File(s) exceed the maximum allowed size of 2.0 Mb: "too-big.mp4"'.
        refusal = page.get_by_text(re.compile("exceed the maximum allowed size", re.I)).first
        refusal.wait_for(timeout=30_000)
        assert "too-big.mp4" in refusal.inner_text()
        page.reload()
        page.get_by_role("tab", name="Video").click()
        page.locator("#moext-video input[type=file]").set_input_files(str(clip["video"]))
        page.locator("#moext-video video").wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        assert page.get_by_text("Video not playable").count() == 0  # VP8 webm plays in Chromium
        page.locator("#moext-analyse").click()
        summary = page.locator("#moext-video-summary")
        summary.get_by_text(re.compile(r"\d+ events?\b")).wait_for(timeout=240_000)
        rows = _wait_for_event(page, "#moext-video-events", timeout_s=30)
        assert rows[0][6] == VIDEO_CLS, rows
        # The expression starts at 2.0 s and peaks at 2.2 s of the clip.
        apex_s = float(rows[0][2])
        assert abs(apex_s - clip["video_truth"]["apex_s"]) < 0.3, rows[0]
        assert page.locator("#moext-video-curve").locator("img, svg, canvas").count() >= 1
        events = list(csv.DictReader(io.StringIO(_download(page, "#moext-video-events-csv", tmp_path / "e.csv"))))
        assert len(events) == len(rows) and events[0]["label"] == rows[0][6]
        frames = list(csv.DictReader(io.StringIO(_download(page, "#moext-video-frames-csv", tmp_path / "f.csv"))))
        assert len(frames) == clip["video_frames"]
        assert {"frame", "timestamp_ms", "face_found", "motion"} <= set(frames[0])
        assert sum(int(r["face_found"]) for r in frames) > 0.9 * clip["video_frames"]
        page.screenshot(path=str(tmp_path / "web-video.png"), full_page=True)
        save_artifact(tmp_path / "web-video.png", "web-video.png")


def test_two_sessions_keep_separate_state(server, clip):
    sessions = server.cache / "moext-sessions"
    with chromiums(clip["y4m"], clip["noface_y4m"]) as (face_browser, empty_browser):
        a = face_browser.new_page()
        a.goto(server.url)
        _start_webcam(a)
        deadline = time.monotonic() + 90
        while _frames_seen(a) < 30:
            assert time.monotonic() < deadline, f"page A stalled: {_status(a)!r}"
            a.wait_for_timeout(1000)
        b = empty_browser.new_page()
        b.goto(server.url)
        _start_webcam(b)
        deadline = time.monotonic() + 90
        while _frames_seen(b) < 5:
            assert time.monotonic() < deadline, f"page B stalled: {_status(b)!r}"
            b.wait_for_timeout(1000)
        # B has its own recognizer: its frame count started at 1, not at A's, and B's
        # empty picture gives "no face" while A keeps tracking the face.
        fa, fb = _frames_seen(a), _frames_seen(b)
        assert fb < fa, (fa, fb)
        assert "no face" in b.locator("#moext-label").inner_text()
        assert "no face" in _status(b)
        a.wait_for_timeout(1500)
        assert "no face" not in a.locator("#moext-label").inner_text()
        assert _frames_seen(a) > fa
        folders = {p.name for p in sessions.iterdir()}
        assert len(folders) == 2, folders
        # Closing B's tab ends its session: its folder (and recognizer) go when Gradio
        # notices the tab is gone (seconds; longer on a loaded 2-core machine).
        b.close()
        deadline = time.monotonic() + 90
        while len({p.name for p in sessions.iterdir()}) > 1:
            assert time.monotonic() < deadline, "the closed session's folder was not deleted"
            time.sleep(0.5)
        assert _frames_seen(a) > 0
