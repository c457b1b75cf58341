"""The benchmark script runs and writes its JSON (speed itself is never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_train_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_train.py"),
            "--seeds",
            "1",
            "2",
            "--steps",
            "1024",
            "--seed-block",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())["a2c/CartPole-v1/default"]
    assert [r["num_seeds"] for r in data["scaling"]] == [1, 2]
    for row in data["scaling"]:
        assert row["compile_s"] > 0 and row["run_s"] > 0 and row["env_steps_per_s"] > 0
        assert row["steps_per_seed"] == 1024 and row["seed_block"] == 1
        assert row["num_seeds"] % row["devices"] == 0  # auto: the devices that divide the seeds
    assert data["machine"]["cpu_count"] >= 1
