"""Moved to `train.bn` (the fine-tuning loop applies it with `--bn-recalibrate`); kept as a
name for older scripts."""

from train.bn import reestimate_bn

__all__ = ["reestimate_bn"]
