"""Checkpoints: kill -9 and --resume give the uninterrupted result bit for bit."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from rljax import envs
from rljax.agents import AGENTS
from rljax.io import checkpoint
from rljax.run import experiment, loop

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "experiments" / "train.py")
# 20 chunks of 120 updates; long enough to be killed part-way.
RUN = [
    "--num-seeds",
    "2",
    "--total-steps",
    "153600",
    "--num-chunks",
    "20",
    "--quiet",
    "--eval-episodes",
    "5",
    "--checkpoint-every",
    "1",
]
TIMING = {"compile_time_s", "train_time_s", "eval_time_s", "wall_time_s", "steps_per_second"}
TIMING.add("compile_cache")  # what the process compiled or loaded, not a result


def _env():
    # Every run here on the same devices (the driver below imports rljax before train.py can
    # ask for one host device per core); this process restores their checkpoints on one.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return {**env, "RLJAX_CPU_DEVICES": "auto"}


def _run(args, **kw):
    return subprocess.run(
        [sys.executable, TRAIN, *args], env=_env(), cwd=ROOT, capture_output=True, text=True, **kw
    )


def _final_state(out: Path):
    """Restore the newest checkpoint of a run into a target built by code."""
    cfg = json.loads((out / "config.json").read_text())
    agent = AGENTS[cfg["agent"]]
    env, env_params = envs.make(cfg["env"])
    config = agent.config(**cfg["config"])
    keys = jax.vmap(jax.random.split)(experiment.run_keys(cfg["seed"], cfg["num_seeds"]))[:, 0]
    spec = envs.spec(env, env_params)
    init = jax.vmap(loop.init_fn(agent, config, spec, env, env_params))  # the runner's Carry
    mngr = checkpoint.manager(out / "checkpoints")
    state, meta = checkpoint.restore(mngr, mngr.latest_step(), jax.eval_shape(init, keys))
    mngr.close()
    return state, meta


def _summary_numbers(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    return {k: v for k, v in s.items() if k not in TIMING}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = _run([*RUN, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    return out


def _assert_same_run(a: Path, b: Path):
    assert _summary_numbers(a) == _summary_numbers(b)
    assert filecmp.cmp(a / "metrics.csv", b / "metrics.csv", shallow=False)
    sa, _ = _final_state(a)
    sb, _ = _final_state(b)
    for x, y in zip(jax.tree.leaves(sa), jax.tree.leaves(sb), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_kill_9_then_resume_is_bitwise_identical(reference, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, TRAIN, *RUN, "--out", str(out)],
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        step = checkpoint.latest_step(out / "checkpoints") if out.exists() else None
        if step is not None and step >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "summary.json").exists()
    killed_at = checkpoint.latest_step(out / "checkpoints")
    assert killed_at is not None and killed_at < 20
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) > 1  # metrics of finished chunks were already on disk

    resumed = _run(["--resume", str(out), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(reference, out)


DRIVER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {experiments!r})
    from rljax.io import checkpoint
    original = checkpoint.save
    calls = []
    def save(mngr, step, state, meta):
        original(mngr, step, state, meta)
        calls.append(step)
        if len(calls) == 3:  # the third save is still being written in the background
            os._exit(137)
    checkpoint.save = save
    import train
    sys.exit(train.main(sys.argv[1:]))
    """
)


def test_kill_during_save_keeps_previous_checkpoint(reference, tmp_path):
    out = tmp_path / "run"
    driver = DRIVER.format(experiments=str(ROOT / "experiments"))
    proc = subprocess.run(
        [sys.executable, "-c", driver, *RUN, "--out", str(out)],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 137, proc.stderr
    step = checkpoint.latest_step(out / "checkpoints")
    assert step in (2, 3)  # the interrupted save is ignored unless it had completed
    state, meta = _final_state(out)
    assert meta["chunks"] == step
    resumed = _run(["--resume", str(out), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(reference, out)


def _snapshot(d: Path) -> dict:
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_resume_bad_input_is_one_line_and_touches_nothing(reference, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import train  # noqa: PLC0415 (a script: on the path only for this test)

    before = _snapshot(reference)
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--resume", str(empty)], "config.json"),
        (["--resume", str(reference), "--hidden-size", "128"], "--hidden-size 64"),
        (["--resume", str(reference), "--num-seeds", "3"], "--num-seeds 2"),
    ]
    others = [a for a in AGENTS if a != "a2c"]
    if others:
        cases.append((["--resume", str(reference), "--agent", others[0]], "--agent a2c"))
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    (no_ckpt / "config.json").write_text((reference / "config.json").read_text())
    cases.append((["--resume", str(no_ckpt)], "no checkpoint"))
    for argv, needle in cases:
        assert train.main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (argv, lines)
    assert _snapshot(reference) == before
