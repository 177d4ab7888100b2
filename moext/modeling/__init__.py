"""`nn.Module`s only: the networks and their losses."""

from moext.modeling.moext import (
    ApexReconstructor,
    FeatureSeparator,
    MoExtClassifier,
    MoExtPretrain,
    MotionExtractor,
    Projection,
)

__all__ = [
    "ApexReconstructor",
    "FeatureSeparator",
    "MoExtClassifier",
    "MoExtPretrain",
    "MotionExtractor",
    "Projection",
]
