"""Sharding the seed axis over devices (4 fake CPU devices, in a separate process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {experiments!r})
    import jax, numpy as np
    from rljax.run import xla_cpu
    xla_cpu.configure(4)  # before JAX starts: 4 host devices
    import train
    assert len(jax.devices()) == 4, jax.devices()
    out = {out!r}
    base = ["--num-seeds", "8", "--total-steps", "2048", "--num-chunks", "2", "--quiet",
            "--eval-episodes", "4"]
    assert train.main([*base, "--devices", "1", "--out", out + "/one"]) == 0
    assert train.main([*base, "--devices", "4", "--out", out + "/four"]) == 0
    assert train.main([*base, "--devices", "all", "--out", out + "/all"]) == 0
    # Two devices, each running its 4 seeds in blocks of 2 (a lax.map of two vmaps).
    assert train.main([*base, "--devices", "2", "--seed-block", "2", "--out", out + "/blocks"]) == 0
    six = ["--num-seeds", "6", "--total-steps", "512", "--num-chunks", "1", "--quiet"]
    assert train.main([*six, "--eval-episodes", "2", "--out", out + "/auto"]) == 0
    codes = [
        train.main([*base, "--devices", "3", "--out", out + "/bad1"]),
        train.main([*base, "--devices", "8", "--out", out + "/bad2"]),
        train.main([*base, "--devices", "two", "--out", out + "/bad3"]),
    ]
    print(json.dumps(codes))
    """
)


@pytest.mark.slow  # about 70 s on 2 CPU cores
def test_sharded_runs_equal_single_device(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    script = SCRIPT.format(experiments=str(ROOT / "experiments"), out=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [2, 2, 2]
    err = [line for line in proc.stderr.splitlines() if "error" in line]
    assert any("not divisible by --devices 3" in line for line in err), err
    assert any("--devices 8 but only 4" in line for line in err), err
    assert any("--devices must be a number, 'all' or 'auto'" in line for line in err), err
    for bad in ("bad1", "bad2", "bad3"):
        assert not (tmp_path / bad).exists()
    drop = {"compile_time_s", "train_time_s", "eval_time_s", "wall_time_s", "steps_per_second"}
    summaries = [
        json.loads((tmp_path / d / "summary.json").read_text())
        for d in ("one", "four", "all", "blocks", "auto")
    ]
    assert [s["devices"] for s in summaries] == [1, 4, 4, 2, 3]  # auto: 3 of 4 divide 6 seeds
    one, four, every, blocks, _ = ({k: v for k, v in s.items() if k not in drop} for s in summaries)
    # Each run computes the same thing on any device; evaluation returns agree exactly.
    assert one["eval_returns"] == four["eval_returns"] == every["eval_returns"]
    assert one["eval_returns"] == blocks["eval_returns"]
    assert one["episodes_to_solve"] == four["episodes_to_solve"] == blocks["episodes_to_solve"]
