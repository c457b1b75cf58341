"""experiments/sweep.py: a grid of float hyperparameters trains in one compile."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import sweep  # noqa: E402

from rljax.agents import AGENTS  # noqa: E402

TINY = [
    "--agent",
    "a2c",
    "--num-seeds",
    "2",
    "--total-steps",
    "1024",
    "--num-chunks",
    "2",
    "--eval-episodes",
    "2",
    "--quiet",
]


def test_six_settings_compile_once_and_equal_plain_runs(tmp_path, monkeypatch, capsys):
    traces = []
    agent = AGENTS["a2c"]

    def counting_learn_step(state, traj, config, spec, warmup=False):
        traces.append(1)  # runs once per trace of the update, not per step
        return agent.learn_step(state, traj, config, spec, warmup)

    monkeypatch.setitem(AGENTS, "a2c", agent._replace(learn_step=counting_learn_step))
    out = tmp_path / "sweep"
    argv = [*TINY, "--grid", "lr=1e-3,3e-3,1e-2", "ent_coef=0,0.01", "--out", str(out)]
    assert sweep.main(argv) == 0
    assert len(traces) == 1  # 6 settings x 2 seeds: one trace of the update, one compile
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert len(rows) == 6
    iqms = [float(r["iqm"]) for r in rows]
    assert iqms == sorted(iqms, reverse=True)
    assert "| rank |" in capsys.readouterr().out
    folder = out / rows[0]["setting"]
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["config"]["lr"] == pytest.approx(cfg["setting"]["lr"])
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["num_seeds"] == 2 and len(summary["eval_returns"]) == 2
    metrics = list(csv.DictReader((folder / "metrics.csv").read_text().splitlines()))
    assert {m["seed"] for m in metrics} == {"0", "1"} and len(metrics) == 2 * 2
    assert (folder / "curves.png").stat().st_size > 1000
    # A setting inside the sweep trains exactly as train.py would with those flags.
    import train

    (row,) = [r for r in rows if float(r["lr"]) == 3e-3 and float(r["ent_coef"]) == 0.01]
    plain = tmp_path / "plain"
    argv = [*TINY[2:], "--lr", "3e-3", "--ent-coef", "0.01", "--out", str(plain)]
    assert train.main(argv) == 0
    a = json.loads((out / row["setting"] / "summary.json").read_text())["eval_returns"]
    b = json.loads((plain / "summary.json").read_text())["eval_returns"]
    assert a == pytest.approx(b, rel=1e-5)


def test_random_search_and_loop(tmp_path):
    out = tmp_path / "s"
    argv = [
        *TINY,
        "--sample",
        "2",
        "--space",
        "lr=log:1e-4:1e-2",
        "--loop",
        "hidden_size=16,32",
        "--out",
        str(out),
    ]
    assert sweep.main(argv) == 0
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert len(rows) == 4 and {r["hidden_size"] for r in rows} == {"16", "32"}


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--grid", "foo=1,2"], "--grid foo: unknown hyperparameter of a2c"),
        (["--grid", "num_envs=4,8"], "--grid num_envs: shape-changing"),
        (["--grid", "lr=a,b"], "must be numbers"),
        (["--loop", "lr=1,2"], "--loop lr: a float hyperparameter"),
        (["--grid", "lr=1e-3", "--devices", "2"], "--devices 2 but only 1"),
        (["--grid", "lr=nan"], "--lr"),
        (["--grid", "gamma=0.9,1.5"], "--gamma"),
        (["--sample", "3"], "--space"),
        (["--sample", "2", "--space", "lr=log:0:1"], "--space lr"),
    ],
)
def test_bad_input(tmp_path, capsys, extra, needle):
    out = tmp_path / "s"
    assert sweep.main([*TINY, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not out.exists()
