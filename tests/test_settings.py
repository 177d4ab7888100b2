"""`moext.settings.apply_sets`: --set on a settings dataclass, typed, nested, range-checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from moext.settings import SettingError, apply_sets, setting_names


@dataclass
class Inner:
    rate: float = 1.0
    pair: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError(f"rate={self.rate}: give a positive rate")


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    count: int = 2
    name: str = "a"
    on: bool = True
    limit: int | None = None
    table: dict[str, float] = field(default_factory=dict)
    where: Path = Path(".")


def test_nested_typed_values_and_defaults_kept():
    got = apply_sets(Outer(), ["inner.rate=2", "count=3", "name=b", "on=false", "limit=null", "inner.pair=[0.5, 2]"])
    assert got == Outer(Inner(2.0, (0.5, 2.0)), 3, "b", False, None)
    got = apply_sets(Outer(), ['table={"a": 1}', "where=/tmp/x"])
    assert got.table == {"a": 1.0} and got.where == Path("/tmp/x")
    assert apply_sets(Outer(), ["limit=7"]).limit == 7
    assert setting_names(Outer) == ["inner.rate", "inner.pair", "count", "name", "on", "limit", "table", "where"]


@pytest.mark.parametrize("item, says", [
    ("inner.rate=abc", "takes a number"), ("count=1.5", "takes a whole number"), ("on=maybe", "true or false"),
    ("name=3", "takes a word"), ("inner.pair=[1]", "JSON list of 2"), ("rate=2", "did you mean inner.rate"),
    ("inner.rate=-1", "give a positive rate"), ("count", "write KEY=VALUE"), ("limit=x", "whole number"),
    ("inner.rate=NaN", "finite number"), ("inner.pair=5", "takes a JSON list"), ("table=5", "JSON object"),
    ("table={\"a\": \"x\"}", "takes a number"), ("where=3", "takes a path"),
])
def test_a_bad_set_names_the_key_and_the_fix(item, says):
    with pytest.raises(SettingError, match=says):
        apply_sets(Outer(), [item])


def test_the_live_settings_refuse_out_of_range_values():
    from realtime.recognizer import RecognizerConfig

    for item, says in (("spotting.noise_tau_ms=0", "positive time"), ("spotting.exit_frac=1.5", "fraction"),
                       ("spotting.enter_z=-1", "not negative"), ("max_faces=0", "1 or more"),
                       ("threads=0", "1 or more"), ("precision=fp64", "fp32 or int8"), ("buffer_ms=-1", "positive"),
                       ("spotting.return_frac=NaN", "finite")):
        with pytest.raises(SettingError, match=says):
            apply_sets(RecognizerConfig(), [item])
    assert apply_sets(RecognizerConfig(), ["spotting.return_frac=10"]).spotting.return_frac == 10.0  # no return test
