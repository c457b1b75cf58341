"""The experiments/train.py contract: bad input, results files, determinism."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import train  # noqa: E402

TINY = [
    "--num-seeds",
    "2",
    "--total-steps",
    "2048",
    "--num-chunks",
    "4",
    "--quiet",
    "--eval-episodes",
    "3",
]


SAC = ["--agent", "sac", "--env", "Pendulum-v1"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--agent", "nope"], "--agent"),
        (["--env", "Foo-v0"], "--env"),
        (["--env", "Pendulum-v1"], "continuous"),
        (["--num-seeds", "0"], "--num-seeds"),
        (["--num-seeds", "-3"], "--num-seeds"),
        (["--total-steps", "10"], "--total-steps"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "0"], "--lr"),
        (["--lr", "-1e-3"], "--lr"),
        (["--gamma", "1.5"], "--gamma"),
        (["--gamma", "-0.1"], "--gamma"),
        (["--num-envs", "abc"], "--num-envs"),
        (["--preset", "nope"], "--preset"),
        (["--mode", "td"], "--mode"),
        (SAC + ["--batch-size", "512", "--buffer-size", "256"], "--batch-size"),
        (SAC + ["--tau", "0"], "--tau"),
        (SAC + ["--tau", "1.5"], "--tau"),
        (SAC + ["--alpha", "-0.2"], "--alpha"),
        (SAC + ["--gradient-steps", "0"], "--gradient-steps"),
        (["--agent", "PPO"], "did you mean 'ppo'?"),
        (["--env", "cartpole-v1"], "did you mean 'CartPole-v1'?"),
        (["--preset", "nosuch"], "valid: default, keras"),
        (["--activation", "gelu"], "choose from 'relu'"),
        (["--running-threshold", "100", "nan"], "--running-threshold"),
    ],
)
def test_bad_input_one_line_exit_2_no_output(refused, argv, needle):
    refused(train.main, argv, needle)


def test_out_holding_another_run_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"agent": "a2c"}')
    (out / "summary.json").write_text("{}")
    assert train.main([*TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert (out / "config.json").read_text() == '{"agent": "a2c"}'  # untouched
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert train.main([*TINY, "--out", str(other), "--overwrite"]) == 2
    assert (other / "notes.txt").read_text() == "keep me"


def test_exit_status_in_a_subprocess(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "train.py"),
            "--lr",
            "nan",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--lr" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def _numbers(summary: dict) -> dict:
    drop = {"compile_time_s", "train_time_s", "eval_time_s", "wall_time_s", "steps_per_second"}
    drop.add("compile_cache")  # what this process compiled or loaded, not a result
    return {k: v for k, v in summary.items() if k not in drop}


def test_results_files_and_determinism(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.main([*TINY, "--out", str(a)]) == 0
    assert train.main([*TINY, "--out", str(b)]) == 0
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    assert _numbers(sa) == _numbers(sb)
    for key in (
        "agent",
        "env",
        "num_seeds",
        "total_steps",
        "eval_returns",
        "solved",
        "episodes_to_solve",
        "compile_time_s",
        "wall_time_s",
        "versions",
    ):
        assert key in sa
    assert len(sa["eval_returns"]) == 2 and len(sa["solved"]) == 2
    assert sa["versions"]["jax"] != "unknown"
    config = json.loads((a / "config.json").read_text())
    assert config["agent"] == "a2c" and config["config"]["lr"] == pytest.approx(1e-3)
    rows = list(csv.DictReader((a / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 4 * 2  # chunks x seeds
    assert {r["seed"] for r in rows} == {"0", "1"}
    assert int(rows[-1]["env_steps"]) == sa["total_steps"]
    assert config["total_steps"] == config["requested_total_steps"] == 2048
    assert "statistics_over" in sa and "greedy" in sa["statistics_over"]
    assert sa["iqm_ci"] is None and "only 2 seed(s)" in sa["warning"]  # no [min, max] "CI"
    # Same run again into the same folder needs --overwrite, then replaces it. A budget that
    # is not a whole number of updates (64 env steps) is rounded down, said in one line, and
    # both numbers are recorded.
    assert train.main([*TINY, "--out", str(a)]) == 2
    capsys.readouterr()
    argv = [*TINY, "--out", str(a), "--overwrite", "--seed", "1", "--total-steps", "2100"]
    assert train.main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "train.py: note: --total-steps 2,100 is not a multiple of the 64 env steps of one "
        "update; training 2,048 (32 updates)"
    ]
    assert json.loads((a / "summary.json").read_text())["seed"] == 1
    config = json.loads((a / "config.json").read_text())
    assert (config["total_steps"], config["requested_total_steps"]) == (2048, 2100)


def test_run_i_does_not_depend_on_batch_size_or_seed_blocks(tmp_path, capsys):
    """Run 0 of 1 seed equals run 0 of 3; --seed-block 2 (a block of 2 and a remainder of 1)
    equals one vmap over the 3 seeds."""
    base = ["--total-steps", "1024", "--num-chunks", "2", "--quiet", "--eval-episodes", "2"]
    single, one, blocks = tmp_path / "single", tmp_path / "one", tmp_path / "blocks"
    assert train.main([*base, "--num-seeds", "1", "--out", str(single)]) == 0
    base += ["--num-seeds", "3"]
    assert train.main([*base, "--seed-block", "none", "--out", str(one)]) == 0
    assert train.main([*base, "--seed-block", "2", "--out", str(blocks)]) == 0
    r0 = json.loads((single / "summary.json").read_text())
    r1 = json.loads((one / "summary.json").read_text())
    r2 = json.loads((blocks / "summary.json").read_text())
    assert r0["eval_returns"][0] == pytest.approx(r1["eval_returns"][0], rel=1e-5)
    assert (r1["seed_block"], r2["seed_block"]) == (None, 2)
    assert r2["eval_returns"] == pytest.approx(r1["eval_returns"], rel=1e-5)
    assert r2["episodes_to_solve"] == r1["episodes_to_solve"]
    bad = tmp_path / "bad"
    for value in ("0", "-3", "x"):
        assert train.main([*base, "--seed-block", value, "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1] == "train.py: error: --seed-block must be a positive number, 'none' or "
        "'auto', got 'x'"
    )
    assert not bad.exists()


def test_nan_guard_stops_with_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    rc = train.main([*TINY, "--lr", "1e30", "--checkpoint-every", "1", "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "non-finite" in err[0] and "update" in err[0] and "seed(s)" in err[0]
    assert not (out / "summary.json").exists()


def test_render_from_checkpoint(tmp_path, capsys):
    import render

    pytest.importorskip("pygame")
    out = tmp_path / "run"
    assert train.main([*TINY, "--out", str(out)]) == 0
    gif = tmp_path / "again.gif"
    assert render.main([str(out), "--run", "1", "--out", str(gif)]) == 0
    assert gif.read_bytes()[:6] == b"GIF89a"
    # By default the seed of the run's own episode.gif, from its render stream: the same GIF.
    same = tmp_path / "same.gif"
    assert render.main([str(out), "--out", str(same)]) == 0
    assert same.read_bytes() == (out / "episode.gif").read_bytes()
    assert render.main([str(tmp_path / "missing")]) == 2
    assert render.main([str(out), "--run", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("render.py: error:") for line in err)


def test_tensorboard_and_wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert train.main([*TINY, "--tensorboard", "--wandb", "--out", str(out)]) == 0
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert list((out / "wandb").glob("offline-run-*"))


def test_missing_tracker_extra_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    out = tmp_path / "run"
    assert train.main([*TINY, "--wandb", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install" in err[0] and "--wandb" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    "text, value",
    [("500000", 500_000), ("500_000", 500_000), ("5e5", 500_000), ("500k", 500_000),
     ("0.5M", 500_000), ("1e6", 1_000_000), ("2K", 2_000)],
)  # fmt: skip
def test_counts_accept_scientific_underscores_and_suffixes(text, value):
    import cli

    assert cli.count(text) == value


@pytest.mark.parametrize("text", ["1.5", "1.2345k", "abc", "", "k", "1e400"])
def test_counts_refuse_what_is_not_a_whole_number(text):
    import argparse

    import cli

    with pytest.raises(argparse.ArgumentTypeError, match="invalid count"):
        cli.count(text)


@pytest.mark.parametrize(
    "argv, needle",
    [(["--num-seed", "2"], "--num-seed"), (["--total", "2048"], "--total"),
     (["--total-steps", "1.5"], "--total-steps")],
)  # fmt: skip
def test_no_prefix_abbreviations_and_whole_counts(refused, argv, needle):
    refused(train.main, argv, needle)


def test_help_lists_every_flag_with_meaning_range_default_and_presets(capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main(["--agent", "ppo", "--preset", "rejax", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert "--agent ppo hyperparameters (defaults of --preset rejax)" in text
    assert "--gae-lambda FLOAT GAE λ" in text and "in [0, 1] (default: 0.95)" in text
    assert "--lr FLOAT learning rate" in text and "(default: 0.00075)" in text  # the preset's
    assert "--activation {relu,tanh,silu,elu}" in text
    assert "--clip-value-loss, --no-clip-value-loss" in text
    assert "presets of --agent ppo" in text and "cleanrl total_steps=500000" in text
    assert "--num-seeds NUM_SEEDS runs trained at once (default: 64)" in text
    assert "--seed SEED root seed; run i uses fold_in(key(seed), i) (default: 0)" in text
    assert "--total-steps 5e5" in text  # the description's example keeps its layout
    from rljax.agents import AGENTS

    for agent in AGENTS:
        with pytest.raises(SystemExit):
            train.main(["--agent", agent, "--help"])
        text = capsys.readouterr().out
        assert f"--agent {agent} hyperparameters" in text and "(default: None)" not in text


def test_every_config_field_has_a_meaning_and_a_check():
    import dataclasses

    from rljax.agents import AGENTS, fields

    for agent in AGENTS.values():
        for f in dataclasses.fields(agent.config):
            assert fields.meaning(f), (agent.name, f.name)
            assert f.metadata["check"] is not None, (agent.name, f.name)


def test_gamma_one_with_bootstrapping_at_a_time_limit_warns(tmp_path, capsys):
    import warnings

    from rljax.agents import AGENTS, DiscountWarning, presets
    from rljax.run import experiment

    spec = experiment.env_spec("CartPole-v1")
    with pytest.warns(DiscountWarning, match="no finite value fixed point"):
        AGENTS["a2c"].config(gamma=1.0).validate(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # vanilla REINFORCE does not bootstrap; γ < 1 is fine
        AGENTS["reinforce"].config(gamma=1.0, baseline=False).validate(spec)
        AGENTS["a2c"].config(gamma=0.999).validate(spec)
    assert presets.TD_ACTOR_CRITIC["seed"]["gamma"] == 1.0  # the seed's setting: warned
    (tmp_path / "r").write_text("not a folder")  # refused after the config is built
    argv = ["--agent", "td_actor_critic", "--preset", "seed", "--out", str(tmp_path / "r")]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("train.py: warning: --gamma 1 with bootstrapping at CartPole-v1")
    assert err[1].startswith("train.py: error: --out")


def test_stop_when_solved_ends_at_the_chunk_where_every_seed_is_solved(tmp_path, monkeypatch):
    from rljax import envs

    monkeypatch.setitem(envs.ENVS, "CartPole-v1", 15.0)  # a random policy's window passes it
    out = tmp_path / "run"
    argv = ["--num-seeds", "2", "--total-steps", "16384", "--num-chunks", "16", "--quiet"]
    assert train.main([*argv, "--eval-episodes", "2", "--stop-when-solved", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["stopped_when_solved"] and s["budget_steps"] == 16384
    assert s["total_steps"] < 16384 and s["total_steps"] % 1024 == 0  # whole chunks
    # Each seed's steps to solve is the end of the chunk where its window first passed, and
    # the run stopped at the chunk where the last seed did.
    assert all(x is not None and x % 1024 == 0 for x in s["steps_to_solve"])
    assert max(s["steps_to_solve"]) == s["total_steps"]
    assert all(e >= 100 for e in s["episodes_to_solve"])  # a full window of 100 episodes
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert int(rows[-1]["env_steps"]) == s["total_steps"]
    assert json.loads((out / "config.json").read_text())["stop_when_solved"] is True


def test_stop_when_solved_needs_a_solved_threshold(refused):
    refused(train.main, ["--agent", "ddpg", "--env", "Pendulum-v1", "--stop-when-solved"], "thresh")


def test_running_reward_thresholds_on_gymnax_match_the_episodes(tmp_path):
    """Keras preset on gymnax CartPole: one episode per update and one update per chunk, so
    metrics.csv holds every episode's return; the running reward (EMA 0.05, from 0) rebuilt
    from them gives the summary's final values and the episode at which each passed."""
    out = tmp_path / "run"
    argv = ["--preset", "keras", "--num-seeds", "2", "--total-steps", "6000", "--num-chunks"]
    argv += ["12", "--eval-episodes", "2", "--running-threshold", "5", "8", "--quiet"]
    assert train.main([*argv, "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    passed = s["running_reward_passed_at"]
    assert set(passed) == {"5.0", "8.0", "475.0"}
    for seed in range(2):
        returns = [float(r["episode_return"]) for r in rows if int(r["seed"]) == seed]
        assert len(returns) == 12 and all(int(r["episodes"]) == 1 for r in rows)
        ema, first = 0.0, {5.0: None, 8.0: None, 475.0: None}
        for i, g in enumerate(returns, start=1):
            ema = 0.05 * g + 0.95 * ema
            for thr in first:
                if first[thr] is None and ema >= thr:
                    first[thr] = i
        got = float([r for r in rows if int(r["seed"]) == seed][-1]["running_reward"])
        np.testing.assert_allclose(s["running_reward"][seed], ema, rtol=1e-4)
        np.testing.assert_allclose(got, ema, rtol=1e-4)
        for thr in (5.0, 8.0, 475.0):
            assert passed[str(thr)]["episodes"][seed] == first[thr]
    assert passed["5.0"]["fraction"] == 1.0  # a random policy's running reward passes 5
    assert passed["475.0"]["fraction"] == 0.0
