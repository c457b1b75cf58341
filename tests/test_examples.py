"""The scripts in examples/ run at tiny budgets and print what they say they print.

Each example is imported from its file and its ``main(argv)`` called in this process (so the
JAX start-up is paid once). compare_runs and act_from_checkpoint read a results folder written
by ``experiments/train.py`` at a tiny budget, made once per test session (shared by the
pytest-xdist workers through a lock file).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN = [
    "--agent",
    "a2c",
    "--env",
    "CartPole-v1",
    "--num-seeds",
    "2",
    "--total-steps",
    "1024",
    "--num-chunks",
    "1",
    "--eval-episodes",
    "1",  # one greedy episode per seed: act_from_checkpoint replays it
    "--quiet",
]


def _example(name: str):
    """The module examples/NAME.py (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(out: Path) -> None:
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        import train
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    assert train.main([*TINY_TRAIN, "--out", str(out)]) == 0


@pytest.fixture(scope="session")
def results_folder(tmp_path_factory, request) -> Path:
    """A finished tiny run of experiments/train.py: config, metrics, summary, checkpoints."""
    if not hasattr(request.config, "workerinput"):  # no xdist: this process's own folder
        out = tmp_path_factory.mktemp("examples") / "a2c_tiny"
        _train(out)
        return out
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of this run
    out = shared / "examples_a2c_tiny"
    with open(shared / "examples_a2c_tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker trains; the others wait for it
        if not (out / "summary.json").is_file():
            _train(out)
    return out


def _floats(pattern: str, text: str) -> list[tuple[float, ...]]:
    return [tuple(float(x) for x in m) for m in re.findall(pattern, text)]


def test_custom_actor_critic(capsys):
    example = _example("custom_actor_critic")
    argv = ["--num-seeds", "2", "--total-steps", "1024", "--eval-episodes", "2"]
    assert example.main(argv) == 0
    rows = _floats(
        r"seed \d+: final training return ([-\d.naninf]+), greedy eval return ([-\d.naninf]+)",
        capsys.readouterr().out,
    )
    assert len(rows) == 2
    for train_return, eval_return in rows:
        # CartPole-v1 pays 1 per step and ends at 500 steps: a return lies in [1, 500].
        assert math.isfinite(train_return) and 1 <= train_return <= 500
        assert math.isfinite(eval_return) and 1 <= eval_return <= 500


def test_custom_actor_critic_final_return_is_the_mean_of_the_last_episodes():
    example = _example("custom_actor_critic")
    metrics = {  # [seeds=2, updates=10]; seed 1 completed no episode at the end
        "return_sum": np.array([[0.0] * 9 + [30.0], [5.0] * 9 + [0.0]]),
        "episodes": np.array([[0] * 9 + [2], [1] * 9 + [0]]),
    }
    final = example.final_training_return(metrics, fraction=0.1)
    assert final[0] == 15.0 and np.isnan(final[1])


def test_sweep_ranked(tmp_path, capsys):
    example = _example("sweep_ranked")
    out = tmp_path / "sweep"
    argv = ["--values", "1e-3,3e-3", "--num-seeds", "2", "--total-steps", "1024"]
    assert example.main([*argv, "--eval-episodes", "2", "--out", str(out)]) == 0
    rows = _floats(
        r"\n\s*(\d+)\s+([\d.e-]+)\s+([\d.]+) \[([\d.]+), ([\d.]+)\]\s+([\d.]+)\s+([\d.]+)",
        capsys.readouterr().out,
    )
    assert [r[0] for r in rows] == [1, 2]
    assert sorted(r[1] for r in rows) == [1e-3, 3e-3]
    iqms = [r[2] for r in rows]
    assert iqms == sorted(iqms, reverse=True)  # ranked best first
    for _, _, iqm, low, high, mean, median in rows:
        assert 1 <= low <= iqm <= high <= 500
        assert 1 <= mean <= 500 and 1 <= median <= 500
    lines = (out / "ranking.csv").read_text().splitlines()
    assert lines[0] == "rank,lr,iqm,iqm_low,iqm_high,mean,median" and len(lines) == 3


def test_compare_runs(results_folder, tmp_path, capsys):
    example = _example("compare_runs")
    # The second run: the same folder with every seed's evaluation return raised by 100.
    better = tmp_path / "better"
    shutil.copytree(results_folder, better, ignore=shutil.ignore_patterns("checkpoints"))
    summary = json.loads((better / "summary.json").read_text())
    scores = np.asarray(summary["eval_returns"])
    summary["eval_returns"] = [x + 100.0 for x in summary["eval_returns"]]
    (better / "summary.json").write_text(json.dumps(summary))
    png = tmp_path / "compare.png"
    assert example.main([str(results_folder), str(better), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from rljax import stats

    iqm = [float(m) for m in re.findall(r"\]\s+([\d.]+) \[[\d.]+, [\d.]+\]\n", out)]
    assert iqm == pytest.approx([stats.iqm(scores), stats.iqm(scores) + 100], abs=0.051)
    assert f"P({results_folder.name} > better) = 0.000" in out  # every seed of B is better


def test_act_from_checkpoint(results_folder, capsys):
    example = _example("act_from_checkpoint")
    recorded = json.loads((results_folder / "summary.json").read_text())["eval_returns"]
    assert recorded[0] != recorded[1]  # so the return below tells the seeds apart
    assert example.main([str(results_folder), "--run", "1"]) == 0
    (ret, steps), *_ = _floats(r"return ([\d.]+) in (\d+) steps", capsys.readouterr().out)
    # Seed 1's restored greedy policy, replaying the run's own evaluation episode (one per
    # seed), earns what the run recorded for seed 1; CartPole pays 1 per step.
    assert ret == recorded[1] and ret == steps


def test_act_from_checkpoint_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    example = _example("act_from_checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        example.main([str(tmp_path)])
    assert exit_info.value.code == 2 and "no config.json" in capsys.readouterr().err
