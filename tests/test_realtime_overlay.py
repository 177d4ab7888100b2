"""The OpenCV overlay draws box, probabilities and the motion strip without a display."""

import numpy as np

from realtime.events import Event, FrameResult
from realtime.overlay import Overlay


def test_overlay_draws_box_probabilities_and_curve():
    ov = Overlay(["negative", "positive", "surprise"], threshold=1.0)
    frame = np.zeros((360, 640, 3), np.uint8)
    ev = Event(900.0, 1000.0, 1200.0, "micro", "positive",
               {"negative": 0.1, "positive": 0.8, "surprise": 0.1}, 1.5, "mouth", 27, 30, 36)
    out = None
    for i in range(40):
        r = FrameResult(i, i * 33.3, True, box=(200, 60, 440, 300), motion=0.2 + 0.1 * (i % 5),
                        state="quiet", probabilities={"negative": 0.2, "positive": 0.5, "surprise": 0.3},
                        events=[ev] if i == 36 else [])
        out = ov.draw(frame, r)
    assert out.shape == (360 + ov.strip_h, 640, 3)
    assert frame.max() == 0  # the input frame is left alone
    assert out[60, 200:440].any()  # the face box
    assert out[360:].any()  # the motion strip
    assert ov.last_event is ev
