"""The one registry type (`moext.registry.Registry`) and the registries built on it."""

import pytest

from moext.registry import Registry


def test_register_get_aliases_help_and_the_error_names_the_choices():
    r: Registry[int] = Registry("colour", ValueError)
    r.register("red", 1, "warm")
    r.register("blue", 2, "cold", aliases=("azure",))
    assert r.get("red") == 1 and r["azure"] == 2 and r.canonical("azure") == "blue"
    assert r.names() == ("red", "blue") and r.choices() == ("azure", "blue", "red")
    assert "azure" in r and "green" not in r and list(r) == ["red", "blue"] and len(r) == 2
    assert r.help() == "red: warm; blue (also azure): cold"
    with pytest.raises(ValueError, match=r"unknown colour 'green'; choose one of azure, blue, red"):
        r.get("green")
    with pytest.raises(ValueError, match="already a colour name"):
        r.register("cyan", 3, aliases=("red",))
    r.register("blue", 4)  # replacing an item drops its old aliases
    assert "azure" not in r and r["blue"] == 4


def test_methods_recipes_datasets_and_model_kinds_are_registries():
    from moext.checkpoint import MODEL_KINDS, CheckpointError
    from train.config import TrainError
    from train.datasets import READERS, DatasetError, read_dataset
    from train.methods import METHODS, get_method
    from train.recipes import RECIPES, get_recipe

    assert all(isinstance(x, Registry) for x in (MODEL_KINDS, METHODS, RECIPES, READERS))
    assert get_method("ma2mi") is get_method("miacnet")  # one method, two names
    assert {"moext", "miacnet", "ststnet"} <= set(METHODS.names()) and "ma2mi" in METHODS.choices()
    with pytest.raises(KeyError, match="choose one of ma2mi, miacnet, moext"):
        get_method("resnet")
    with pytest.raises(TrainError, match="unknown --recipe 'fast'; choose one of"):
        get_recipe("fast")
    with pytest.raises(DatasetError, match="unknown dataset 'casme9'"):
        read_dataset("casme9", ".")
    with pytest.raises(CheckpointError, match="unknown model kind"):
        MODEL_KINDS.get("nope")
    assert "CASME II" in READERS.help() and "cpu:" in RECIPES.help()
