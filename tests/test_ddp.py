"""Pre-training and fine-tuning under torchrun with 2 CPU processes (gloo): both ranks end
with bit-identical weights, and the checkpoint records both ranks' digests."""

import json
import os
import subprocess
import sys

import pytest
from train_data_helpers import TINY_MODEL, make_cache


def _torchrun(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_pretrain_and_finetune_under_torchrun_agree_across_ranks(tmp_path):
    cache = make_cache(tmp_path / "cache", subjects=2)
    model = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
    common = ["--epochs", "2", "--batch-size", "4", "--repeats", "1", "--quiet", "--threads", "1"]
    r = _torchrun(["pretrain", str(cache), "--out", str(tmp_path / "pre"), *common, *model], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((tmp_path / "pre" / "pretrained.json").read_text())["extra"]
    assert meta["world_size"] == 2
    digests = meta["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]

    r = _torchrun(["finetune", str(cache), "--protocol", "cde", "--init", str(tmp_path / "pre" / "pretrained.safetensors"),
                   "--out", str(tmp_path / "ft"), *common], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((tmp_path / "ft" / "classifier.json").read_text())["extra"]
    assert meta["world_size"] == 2
    assert len(meta["rank_weight_digests"]) == 2 and len(set(meta["rank_weight_digests"])) == 1
