"""Pictures for the browser demo: motion curve, face thumbnails, the video tab's plot.

Everything here returns in-memory values (an HTML `<img>` with a `data:` URI, a matplotlib
figure that Gradio sends as base64): a `gr.Image` output would write a PNG of the user's face
into Gradio's cache on every frame, and faces are biometric data (see `realtime.web`).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

# BGR colours of the live curve (OpenCV draws in BGR).
_CURVE = (200, 90, 30)
_ONSET = (60, 160, 40)
_APEX = (40, 40, 220)
_GRID = (225, 225, 225)
_TEXT = (70, 70, 70)


@dataclass
class Mark:
    """An event drawn on a motion curve (times in seconds on the curve's clock)."""

    onset_s: float
    apex_s: float
    offset_s: float
    text: str


def png_data_uri(img_bgr: np.ndarray) -> str:
    """HWC uint8 BGR image -> `data:image/png;base64,...` (lossless, never on disk)."""
    ok, buf = cv2.imencode(".png", img_bgr)
    if not ok:  # only an empty or malformed array gets here
        raise ValueError(f"cannot encode an image of shape {img_bgr.shape} as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def curve_image(
    t_s: Sequence[float],
    motion: Sequence[float],
    marks: Sequence[Mark],
    window_s: float,
    now_s: float,
    threshold: float | None = None,
    size: tuple[int, int] = (720, 180),
) -> np.ndarray:
    """The last `window_s` seconds of motion (% IOD) as an HWC uint8 BGR plot.

    NaN motion (no face, or no onset reference yet) leaves a gap. Each mark draws its onset
    (green) and apex (red) as vertical lines with `text` above the apex. Drawn with OpenCV
    because it costs ~1 ms a frame where matplotlib costs tens of milliseconds.
    """
    w, h = size
    left, right, top, bottom = 44, 10, 18, 22
    img = np.full((h, w, 3), 255, np.uint8)
    t = np.asarray(t_s, np.float64)
    m = np.asarray(motion, np.float64)
    t0 = now_s - window_s
    keep = t >= t0
    t, m = t[keep], m[keep]
    finite = m[np.isfinite(m)]
    y_max = max(3.0, float(finite.max()) * 1.15 if finite.size else 0.0)
    if threshold is not None:
        y_max = max(y_max, threshold * 1.3)
    pw, ph = w - left - right, h - top - bottom

    def px(ts: np.ndarray | float) -> np.ndarray:
        return left + (np.asarray(ts) - t0) / window_s * pw

    def py(v: np.ndarray | float) -> np.ndarray:
        return top + ph - np.asarray(v) / y_max * ph

    for frac in (0.0, 0.5, 1.0):
        y = int(round(float(py(frac * y_max))))
        cv2.line(img, (left, y), (w - right, y), _GRID, 1)
        cv2.putText(img, f"{frac * y_max:.1f}", (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, _TEXT, 1, cv2.LINE_AA)
    cv2.putText(img, "% IOD", (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, _TEXT, 1, cv2.LINE_AA)
    for k in range(int(np.ceil(t0)), int(np.floor(now_s)) + 1):
        x = int(round(float(px(k))))
        cv2.line(img, (x, top + ph), (x, top + ph + 3), _TEXT, 1)
        if k % 2 == 0:
            cv2.putText(img, f"{k}s", (x - 8, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, _TEXT, 1, cv2.LINE_AA)
    if threshold is not None:
        y = int(round(float(py(threshold))))
        for x in range(left, w - right, 8):
            cv2.line(img, (x, y), (min(x + 4, w - right), y), (160, 160, 160), 1)
    for mk in marks:
        if mk.offset_s < t0:
            continue
        for ts, colour in ((mk.onset_s, _ONSET), (mk.apex_s, _APEX)):
            if ts >= t0:
                x = int(round(float(px(ts))))
                cv2.line(img, (x, top), (x, top + ph), colour, 1, cv2.LINE_AA)
        if mk.apex_s >= t0:
            x = int(round(float(px(mk.apex_s))))
            cv2.putText(img, mk.text, (min(x + 3, w - 90), top - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38, _APEX, 1, cv2.LINE_AA)
    # One polyline per run of finite values, so gaps stay gaps.
    pts = np.stack([px(t), py(np.nan_to_num(m))], -1) if t.size else np.zeros((0, 2))
    ok = np.isfinite(m)
    start = None
    for i in range(len(m) + 1):
        if i < len(m) and ok[i]:
            start = i if start is None else start
        elif start is not None:
            seg = np.round(pts[start:i]).astype(np.int32)
            if len(seg) == 1:
                cv2.circle(img, tuple(int(v) for v in seg[0]), 1, _CURVE, -1)
            else:
                cv2.polylines(img, [seg.reshape(-1, 1, 2)], False, _CURVE, 2, cv2.LINE_AA)
            start = None
    return img


def curve_html(img_bgr: np.ndarray, alt: str = "motion curve") -> str:
    return f'<img src="{png_data_uri(img_bgr)}" alt="{html.escape(alt)}" style="width:100%;max-width:720px">'


def thumbnails_html(
    onset_bgr: np.ndarray | None, apex_bgr: np.ndarray | None, caption: str, side: int = 112
) -> str:
    """Onset and apex face crops side by side (inline images, elem ids for tests)."""
    cells = []
    for name, img in (("onset", onset_bgr), ("apex", apex_bgr)):
        if img is None:
            body = f'<div style="width:{side}px;height:{side}px;background:#eee"></div>'
        else:
            small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
            body = f'<img class="moext-{name}" src="{png_data_uri(small)}" alt="{name} face" width="{side}" height="{side}">'
        cells.append(f'<figure style="margin:0 8px 0 0;display:inline-block;text-align:center">{body}'
                     f"<figcaption>{name}</figcaption></figure>")
    return f'<div id="moext-thumbs">{"".join(cells)}<div>{html.escape(caption)}</div></div>'


def video_figure(
    t_s: Sequence[float],
    motion: Sequence[float],
    marks: Sequence[Mark],
    threshold: float | None = None,
):
    """Matplotlib figure of a whole video's motion curve with event onset/apex marks."""
    import matplotlib

    matplotlib.use("Agg")  # the server has no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 2.8), dpi=100)
    ax.plot(t_s, motion, color="#1f5ac8", lw=1.2, label="motion (% IOD)")
    for k, mk in enumerate(marks):
        ax.axvspan(mk.onset_s, mk.offset_s, color="#f2c94c", alpha=0.25, lw=0)
        ax.axvline(mk.onset_s, color="#2ca02c", lw=1, label="onset" if k == 0 else None)
        ax.axvline(mk.apex_s, color="#d62728", lw=1, label="apex" if k == 0 else None)
        ax.annotate(mk.text, (mk.apex_s, 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                    ha="left", va="bottom", color="#d62728")
    if threshold is not None:
        ax.axhline(threshold, color="#999999", lw=0.8, ls="--", label="entry threshold")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("% IOD")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    plt.close(fig)  # Gradio renders the figure object; pyplot must not keep it alive
    return fig
