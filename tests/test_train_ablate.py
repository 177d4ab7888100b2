"""`moext-train ablate`: each Table 7 switch changes what it should and the table is written."""

import json

import pytest
import torch
from train_data_helpers import TINY_MODEL, make_cache
from typer.testing import CliRunner

from train.ablate import variants_of
from train.cli import app


def test_variants_match_table_7():
    assert variants_of("moext") == ["full", "no-pretrain", "no-macro", "no-motion-extractor", "no-L_st", "no-L_ss"]


@pytest.mark.slow
def test_ablate_runs_switches_and_writes_table(tmp_path):
    torch.set_num_threads(1)
    cache = make_cache(tmp_path / "cache", subjects=2, macro=1)
    model = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
    out = tmp_path / "abl"
    args = ["ablate", str(cache), "--protocol", "cde", "--out", str(out), "--pretrain-epochs", "1", "--epochs", "1",
            "--batch-size", "6", "--repeats", "1", "--quiet", *model]
    for v in ("no-pretrain", "no-macro", "no-motion-extractor", "no-L_ss"):
        args += ["--variant", v]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    table = (out / "ablation.md").read_text()
    for v in ("no-pretrain", "no-macro", "no-motion-extractor", "no-L_ss"):
        assert f"| {v} |" in table
        assert (out / v / "loso" / "metrics.json").is_file()
    res = json.loads((out / "ablation.json").read_text())
    assert all(0 <= res[v]["pooled"]["uf1"] <= 1 for v in res)
    # Each switch reached the run it names.
    assert not (out / "no-pretrain" / "pretrain").exists()
    assert json.loads((out / "no-pretrain" / "loso" / "config.json").read_text())["init"] is None
    no_macro = json.loads((out / "no-macro" / "pretrain" / "pretrained.json").read_text())["extra"]
    assert no_macro["macro_pairs"] == 0 and no_macro["micro_pairs"] == 6
    no_me = json.loads((out / "no-motion-extractor" / "pretrain" / "pretrained.json").read_text())
    assert no_me["config"]["use_motion_extractor"] is False
    assert json.loads((out / "no-motion-extractor" / "loso" / "config.json").read_text())["model"]["use_motion_extractor"] is False
    no_ss = json.loads((out / "no-L_ss" / "pretrain" / "pretrained.json").read_text())
    assert no_ss["config"]["alpha_ss"] == 0.0 and no_ss["config"]["alpha_st"] == 0.5
    # Resuming a finished ablation recomputes nothing and keeps the table.
    r = CliRunner().invoke(app, args + ["--resume"])
    assert r.exit_code == 0, r.output
    assert (out / "ablation.md").read_text() == table
