"""Training presets (`--recipe`): a user picks one name instead of fifteen flags.

A recipe is settings by group (`optim`, `augment`, `run`, `model`) under the dataclass
defaults and over nothing else: `--config`, explicit flags and `--set` still win. Its model
settings apply per method (MoExt, MIACNet and STSTNet have different configs); when fine-tuning
from `--init`, only the fields a fine-tuning may change (`train.finetune.FINETUNE_FIELDS`) are
taken from it, the architecture being the pre-trained checkpoint's.

- `cpu` (the default of finetune, loso and ablate): CPU-sized networks (MobileNetV3-Small at
  128 px, the demo weights' widths) with the onset -> apex flow as an extra input of the head,
  and a schedule that fits its training folds; STSTNet with its own published schedule.
- `paper`: the paper's §4.1.2 settings (ResNet-18 at 224, 30 epochs, batch 20, Adam lr 1e-4,
  weight decay 1e-4, mirror + rotation in [-10, 10] deg to 10x the data); pre-train first
  (`moext-train pretrain --recipe paper`), then fine-tune or LOSO with `--init`.

The measured time per fold and the evidence behind each choice: docs/TRAINING.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moext.registry import Registry

Settings = dict[str, dict[str, Any]]

# The demo weights' CPU widths (realtime/weights/demo.json), per method.
_MOEXT_CPU = {"arch": "unet", "backbone": "mobilenet_v3_small", "image_size": 128, "branch_channels": 32,
              "map_stride": 4, "branch_pool": 4, "projection_dim": 16}
_MIACNET_CPU = {"backbone": "mobilenet_v3_small", "image_size": 128, "action_channels": 32,
                "position_channels": 16, "fusion_channels": 32, "latent_channels": 16}
# STSTNet as the 2019 baseline was run on real CASME II: Adam 5e-4, the whole training set as
# one batch, 500 epochs, no augmentation.
_STSTNET = {"optim": {"batch_size": 4096, "epochs": 500, "lr": 5e-4, "weight_decay": 0.0, "schedule": "constant",
                      "warmup_epochs": 0.0, "freeze_epochs": 0.0, "transfer_lr_ratio": 1.0},
            "augment": {"repeats": 1, "mirror": False, "max_rotation_deg": 0.0}}


@dataclass(frozen=True)
class Recipe:
    """One preset.

    Attributes:
        name: the `--recipe` value.
        summary: one line for `--help`.
        finetune: settings of a classifier's training (finetune, loso, ablate's fine-tunings).
        pretrain: settings of a pre-training.
        methods: per method name, settings over `finetune` (its `model` group is the method's
            own config; a method without an entry gets no model settings).
    """

    name: str
    summary: str
    finetune: Settings = field(default_factory=dict)
    pretrain: Settings = field(default_factory=dict)
    methods: dict[str, Settings] = field(default_factory=dict)

    def for_method(self, method: str, stage: str = "finetune") -> Settings:
        """The settings by group for `method` at `stage` ("finetune" or "pretrain"): the
        stage's settings, then the method's own (at pre-training only its model settings)."""
        base = self.finetune if stage == "finetune" else self.pretrain
        out: Settings = {g: dict(v) for g, v in base.items()}
        for g, v in self.methods.get(_canonical(method), {}).items():
            if stage == "finetune" or g == "model":
                out.setdefault(g, {}).update(v)
        out.setdefault("model", {})
        return out


def _canonical(method: str) -> str:
    """A method's registered name (a recipe's per-method settings are keyed by it)."""
    from train.methods import METHODS

    return METHODS.canonical(method) if method in METHODS else method


def _unknown_recipe(message: str) -> Exception:
    from train.config import TrainError

    return TrainError(message.replace("unknown recipe", "unknown --recipe"))


RECIPES: Registry[Recipe] = Registry("recipe", _unknown_recipe)


def register_recipe(recipe: Recipe) -> None:
    RECIPES.register(recipe.name, recipe, recipe.summary)


def get_recipe(name: str) -> Recipe:
    return RECIPES.get(name)


def recipe_help() -> str:
    return "training preset: " + RECIPES.help()


register_recipe(Recipe(
    name="cpu",
    summary=("CPU-sized nets (MobileNetV3-Small 128) with the onset->apex flow as an extra head input, "
             "its flow branch trained first, then a schedule that fits (docs/TRAINING.md); "
             "STSTNet at its published schedule"),
    # choice: the flow branch first trained alone as STSTNet is (500 full-batch steps, Adam 5e-4),
    # then 20 epochs x 2 repeats with 1 warm-up epoch and cosine decay, batch 10, lr 1e-3;
    # pre-trained layers (and that flow branch) wait 2 epochs, then train at 0.3 x lr. Without
    # the first stage the joint start left the flow branch under-trained (docs/TRAINING.md).
    finetune={
        "optim": {"batch_size": 10, "epochs": 20, "lr": 1e-3, "schedule": "cosine", "warmup_epochs": 1.0,
                  "freeze_epochs": 2.0, "transfer_lr_ratio": 0.3, "flow_first_epochs": 500},
        "augment": {"repeats": 2},
    },
    pretrain={"optim": {"batch_size": 10, "epochs": 10, "lr": 1e-3}, "augment": {"repeats": 1}},
    methods={
        "moext": {"model": {**_MOEXT_CPU, "flow_input": True}},
        "miacnet": {"model": {**_MIACNET_CPU, "flow_input": True}},
        "ststnet": _STSTNET,
    },
))

register_recipe(Recipe(
    name="paper",
    summary=("the paper's settings: ResNet-18 at 224, 30 epochs, batch 20, Adam 1e-4, weight decay 1e-4, "
             "mirror + rotation +-10 deg to 10x the data; pre-train first, then --init"),
    finetune={
        "optim": {"batch_size": 20, "epochs": 30, "lr": 1e-4, "weight_decay": 1e-4, "schedule": "constant"},
        "augment": {"repeats": 10, "mirror": True, "max_rotation_deg": 10.0},
    },
    pretrain={
        "optim": {"batch_size": 20, "epochs": 30, "lr": 1e-4, "weight_decay": 1e-4, "schedule": "constant"},
        "augment": {"repeats": 10, "mirror": True, "max_rotation_deg": 10.0},
    },
    methods={
        "moext": {"model": {"backbone": "resnet18", "image_size": 224}},
        "miacnet": {"model": {"backbone": "resnet18", "image_size": 224}},
        "ststnet": _STSTNET,
    },
))

DEFAULT_RECIPE = "cpu"
