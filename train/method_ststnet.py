"""STSTNet (Liong et al., FG 2019), the optical-flow baseline: `--method ststnet`.

Onset -> apex optical flow (u, v, optical strain at 28 x 28, `moext.flow`), three parallel
convolutions of 3, 5 and 8 filters, one linear layer (`moext.modeling.flownet`). It has no
pre-training; it is trained and reported by the same `finetune`, `loso` and `evaluate` code as
the other methods, and is the reference row of every learning table: on 142 real CASME II
samples (measured independently, strict LOSO) it scored UF1 0.79-0.81 where our two-frame
networks scored 0.33-0.66.
"""

from __future__ import annotations

import moext
from train.config import TrainError
from train.methods import Method, register_method


def _no_pretraining(*_args, **_kwargs):
    raise TrainError("--method ststnet has no pre-training: train it with `moext-train finetune` or "
                     "`moext-train loso --method ststnet` (no --init)")


register_method(
    Method(
        name="ststnet",
        config_cls=moext.STSTNetConfig,
        pretrain_kind=None,
        classifier_kind="ststnet",
        build_pretrain=_no_pretraining,
        build_classifier=moext.STSTNet,
        pretrain_loss=_no_pretraining,
        pretrain_dataset=_no_pretraining,
        transfer=_no_pretraining,
        ablations={},
    ),
    help="STSTNet, the 2019 flow baseline: onset-apex optical flow, no pre-training",
)
