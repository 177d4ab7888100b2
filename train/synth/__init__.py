"""Synthetic micro-expressions on real face photos — for tests and demos only.

A real photo (by default scikit-image's public-domain astronaut) is turned into several
"subjects" by per-subject face-shape, colour, pose and mirror variation. Expressions are
FACS-like, localized warps driven by the face-mesh landmarks: each action unit (AU) moves a
few landmarks along the face's own axes, a Gaussian-kernel regression spreads those moves
into a dense displacement field (zero far from the moving landmarks and at anchor points
such as the eye corners and the nose), and `cv2.remap` applies the field scaled by an
onset -> apex -> offset profile. Small rigid head sway, illumination drift and sensor noise
are added per frame.

Outputs (see `write_dataset`):
- the CASME II layout (`CASME2_RAW_selected/subXX/EPxx_yy/img{N}.jpg` + a coding sheet with
  the real columns), so that the real CASME II reader is what tests exercise;
- macro-expression clips (larger, longer) as frame folders + `labels.csv` for the macro reader;
- long 30 fps videos with ground-truth intervals (micro, macro, head turns) for spotting,
  also callable as `make_long_video`.

Modules, in the order the data flows: `aus` (action units as landmark moves, the dense
field), `identities` (photos -> synthetic subjects), `profiles` (amplitude over time, head
sway), `render` (one frame), `clips` (a clip's AUs and frames), `dataset` (`write_dataset`:
the CASME II layout, macro clips, truth), `long_video` (`make_long_video`), `realproxy`
(`write_realproxy`, `render_sample`: the proxy meant to be as hard as real CASME II, issue 24).

Numbers measured on this data say nothing about real micro-expressions.
"""

from train.synth.aus import (
    ANCHORS,
    AU_MOVES,
    CLASSIC_AU_MOVES,
    NEGATIVE_PATTERNS,
    Pattern,
    draw_pattern,
    CASME2_EMOTION,
    CLASS_AUS,
    CLASSES,
    EXPRESSION_SIGMA_IOD,
    SHAPE_SIGMA_IOD,
    SURPRISE_AU5,
    landmark_field,
)
from train.synth.clips import ClipTruth, au_code, class_aus, expression_field, head_motion, render_clip
from train.synth.dataset import CASME2_COLUMNS, SHEET_NAME, STYLES, SynthConfig, write_casme2_sheet, write_dataset
from train.synth.identities import (
    IDENTITY_NAMES,
    IMAGE_SUFFIXES,
    PYFEAT_FACES,
    Identity,
    SynthError,
    default_faces,
    detect_photos,
    faces_by_name,
    load_faces,
    make_background,
    make_identity,
    person_of,
    pyfeat_faces,
)
from train.synth.long_video import LONG_KINDS, make_long_video, plan_events
from train.synth.profiles import event_profile
from train.synth.render import Renderer
from train.synth.realproxy import RealProxyConfig, render_sample, write_realproxy

__all__ = [
    "ANCHORS", "AU_MOVES", "CLASSIC_AU_MOVES", "IDENTITY_NAMES", "NEGATIVE_PATTERNS", "PYFEAT_FACES", "STYLES",
    "Pattern", "draw_pattern", "expression_field", "faces_by_name", "head_motion", "person_of", "pyfeat_faces", "CASME2_COLUMNS", "CASME2_EMOTION", "CLASS_AUS", "CLASSES", "EXPRESSION_SIGMA_IOD",
    "IMAGE_SUFFIXES", "LONG_KINDS", "SHAPE_SIGMA_IOD", "SHEET_NAME", "SURPRISE_AU5", "ClipTruth", "Identity",
    "Renderer", "SynthConfig", "SynthError", "au_code", "class_aus", "default_faces", "detect_photos",
    "event_profile", "landmark_field", "load_faces", "make_background", "make_identity", "make_long_video",
    "plan_events", "render_clip", "write_casme2_sheet", "write_dataset",
    "RealProxyConfig", "render_sample", "write_realproxy",
]
