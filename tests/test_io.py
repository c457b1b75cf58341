"""Tests for rljax.io (metrics, curve plots, episode rendering) and experiments/compare.py."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")

from rljax import envs  # noqa: E402
from rljax.io import plots, render  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


def _load_compare():
    if str(ROOT / "experiments") not in sys.path:  # compare.py imports experiments/cli.py
        sys.path.insert(0, str(ROOT / "experiments"))
    spec = importlib.util.spec_from_file_location("compare", ROOT / "experiments" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare = _load_compare()


# ------------------------------------------------------------------------ synthetic runs


def _write_metrics(path: Path, returns: np.ndarray, steps_per_point: int = 100) -> None:
    """Long-format metrics.csv; NaN in ``returns`` [S, P] becomes an empty cell.

    Rows are written point-major (all seeds of point 0, then point 1, ...), as a logger would.
    """
    num_seeds, num_points = returns.shape
    lines = ["seed,update,env_steps,episodes,episode_return,actor_loss"]
    for p in range(num_points):
        for s in range(num_seeds):
            r = returns[s, p]
            cell = "" if np.isnan(r) else f"{r:.3f}"
            lines.append(f"{s},{p + 1},{(p + 1) * steps_per_point},{p},{cell},{0.1 * s - p}")
    path.write_text("\n".join(lines) + "\n")


def _make_run(
    directory: Path, *, env: str = "CartPole-v1", shift: float = 0.0, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    num_seeds, num_points = 8, 30
    base = np.linspace(20.0, 400.0, num_points) + shift
    returns = base[None, :] + rng.normal(0.0, 30.0, size=(num_seeds, num_points))
    returns[:, :2] = np.nan  # no episode completed yet
    returns[rng.random(returns.shape) < 0.2] = np.nan  # gaps
    directory.mkdir(parents=True)
    _write_metrics(directory / "metrics.csv", returns)
    eval_returns = (rng.normal(400.0 + shift, 40.0, size=num_seeds)).tolist()
    summary = {
        "agent": "a2c",
        "env": env,
        "eval_returns": eval_returns,
        "solved": [r >= 475.0 for r in eval_returns],
    }
    (directory / "summary.json").write_text(json.dumps(summary))
    config = {"agent": "a2c", "env": env, "num_seeds": num_seeds, "seed": seed, "config": {}}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


# -------------------------------------------------------------------------- read_metrics


def test_read_metrics_shapes_order_and_empty_returns(tmp_path):
    returns = np.array([[np.nan, 10.0, np.nan, 30.0], [np.nan, np.nan, 25.0, 35.0]])
    path = tmp_path / "metrics.csv"
    _write_metrics(path, returns, steps_per_point=64)
    # Shuffle the data rows: reading must not depend on row order.
    lines = path.read_text().splitlines()
    body = lines[1:]
    np.random.default_rng(0).shuffle(body)
    path.write_text("\n".join([lines[0], *body]) + "\n")

    m = plots.read_metrics(path)
    np.testing.assert_array_equal(m["seeds"], [0, 1])
    np.testing.assert_array_equal(m["env_steps"], [64, 128, 192, 256])
    assert m["episode_return"].shape == (2, 4)
    np.testing.assert_array_equal(np.isnan(m["episode_return"]), np.isnan(returns))
    np.testing.assert_allclose(m["episode_return"], returns)
    np.testing.assert_array_equal(m["update"], [[1, 2, 3, 4]] * 2)
    np.testing.assert_allclose(m["actor_loss"][1], [0.1, -0.9, -1.9, -2.9])
    assert "seed" not in m


def test_read_metrics_rejects_missing_column(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("seed,update,env_steps\n0,1,8\n")
    with pytest.raises(ValueError, match="episode_return"):
        plots.read_metrics(path)


def test_read_metrics_rejects_seeds_with_different_points(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("seed,update,env_steps,episode_return\n0,1,8,1\n0,2,16,2\n1,1,8,1\n")
    with pytest.raises(ValueError, match="different numbers of rows"):
        plots.read_metrics(path)


def test_read_metrics_seeds_at_the_same_updates_with_different_steps(tmp_path):
    """Monte-Carlo bridged runs: same updates, different env steps per seed -> the mean."""
    path = tmp_path / "metrics.csv"
    rows = "0,1,90,1\n0,2,200,2\n1,1,110,3\n1,2,260,4\n"
    path.write_text("seed,update,env_steps,episode_return\n" + rows)
    m = plots.read_metrics(path)
    np.testing.assert_array_equal(m["env_steps"], [100, 230])
    np.testing.assert_array_equal(m["env_steps_per_seed"], [[90, 200], [110, 260]])
    plots.plot_curves([("mc", m)], tmp_path / "curves.png")
    no_update = tmp_path / "no_update.csv"
    no_update.write_text("seed,env_steps,episode_return\n0,8,1\n1,16,1\n")
    with pytest.raises(ValueError, match="seeds disagree on env_steps"):
        plots.read_metrics(no_update)


# ------------------------------------------------------------------------ curves and plot


def test_forward_fill_and_statistic_over_seeds_with_values():
    curves = np.array([[np.nan, 1.0, np.nan, 3.0], [np.nan, np.nan, 2.0, np.nan]])
    filled = plots.forward_fill(curves)
    np.testing.assert_array_equal(
        filled, np.array([[np.nan, 1.0, 1.0, 3.0], [np.nan, np.nan, 2.0, 2.0]])
    )
    est, low, high, count = plots.curve_statistic(curves, statistic="mean", reps=200)
    np.testing.assert_array_equal(count, [0, 1, 2, 2])
    np.testing.assert_allclose(est, [np.nan, 1.0, 1.5, 2.5])
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert low[1] == high[1] == 1.0  # one seed: a degenerate band
    assert np.all(low[2:] <= est[2:]) and np.all(est[2:] <= high[2:])


def test_plot_curves_writes_png(tmp_path):
    run_a = _make_run(tmp_path / "a")
    metrics = plots.read_metrics(run_a / "metrics.csv")
    out = plots.plot_curves(
        [("a2c", metrics)], tmp_path / "curves.png", threshold=475.0, title="CartPole-v1"
    )
    data = Path(out).read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 20_000


def test_plot_curves_draws_a_ci_band_only_from_five_seeds(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    bands, labels = [], []
    fill, plot = Axes.fill_between, Axes.plot
    monkeypatch.setattr(
        Axes, "fill_between", lambda ax, *a, **k: bands.append(1) or fill(ax, *a, **k)
    )
    monkeypatch.setattr(
        Axes, "plot", lambda ax, *a, **k: labels.append(k.get("label")) or plot(ax, *a, **k)
    )
    x = np.arange(1, 4) * 100.0
    for n, want_band in ((4, False), (5, True)):
        bands.clear()
        labels.clear()
        curves = np.arange(3.0)[None] + np.arange(n)[:, None]
        plots.plot_curves([("run", {"env_steps": x, "episode_return": curves})], tmp_path / "c.png")
        assert bool(bands) is want_band
        label = next(t for t in labels if t and t.startswith("run:"))
        assert ("95% CI" in label) is want_band and f"of {n} seeds" in label


# ----------------------------------------------------------------------------- compare.py


def test_compare_writes_png_and_prints_table(tmp_path, capsys):
    a = _make_run(tmp_path / "run_a", seed=1)
    b = _make_run(tmp_path / "run_b", shift=60.0, seed=2)
    out = tmp_path / "cmp.png"
    assert compare.main([str(a), str(b), "--out", str(out), "--reps", "300"]) == 0
    printed = capsys.readouterr().out
    assert "IQM" in printed and "P(" in printed
    assert "P(run_a > run_b)" in printed
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 20_000


def test_compare_default_out_is_beside_the_first_run_never_the_cwd(tmp_path, capsys, monkeypatch):
    a = _make_run(tmp_path / "runs" / "run_a", seed=1)
    b = _make_run(tmp_path / "runs" / "run_b", shift=60.0, seed=2)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert compare.main([str(a), str(b), "--reps", "200"]) == 0
    out = tmp_path / "runs" / "compare_run_a_vs_run_b.png"
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {out}" in capsys.readouterr().out
    assert not any(cwd.iterdir())


def test_compare_with_few_seeds_warns_instead_of_intervals(tmp_path, capsys):
    a = _make_run(tmp_path / "run_a", seed=1)
    few = _make_run(tmp_path / "run_b", seed=2)
    summary = json.loads((few / "summary.json").read_text())
    summary["eval_returns"] = summary["eval_returns"][:2]
    (few / "summary.json").write_text(json.dumps(summary))
    assert compare.main([str(a), str(few), "--out", str(tmp_path / "c.png"), "--reps", "200"]) == 0
    printed = capsys.readouterr().out
    assert "Greedy evaluation return" in printed
    (p_line,) = [line for line in printed.splitlines() if "P(run_a > run_b)" in line]
    assert "CI" not in p_line
    assert "Warning: run_b: only 2 seed(s)" in printed


def test_compare_missing_dir_is_one_line_exit_2(tmp_path, capsys):
    a = _make_run(tmp_path / "run_a")
    assert compare.main([str(a), str(tmp_path / "nope"), "--out", str(tmp_path / "x.png")]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "nope" in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "x.png").exists()


def test_compare_refuses_bad_input(tmp_path, capsys):
    a = _make_run(tmp_path / "run_a")
    p = _make_run(tmp_path / "run_p", env="Pendulum-v1")
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv in ([str(a), str(p)], [str(a), str(empty)], []):
        assert compare.main([*argv, "--out", str(tmp_path / "x.png")]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------- rendering


def _always_zero(key, params, obs, greedy):
    assert greedy is True
    return jnp.zeros(obs.shape[:1], jnp.int32)


def _zero_torque(key, params, obs, greedy):
    return jnp.zeros((obs.shape[0], 1), jnp.float32)


def _reference_episode(key, env, env_params):
    """env.reset/env.step in a Python loop with rollout_states' documented key use."""
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key, env_params)
    step_keys = jax.random.split(key, env_params.max_steps_in_episode)
    states, rewards, final_obs = [state], [0.0], None
    for t in range(env_params.max_steps_in_episode):
        _, env_key = jax.random.split(step_keys[t])
        obs, state, reward, terminated, truncated, info = env.step(env_key, state, 0, env_params)
        rewards.append(float(reward))
        if terminated or truncated:
            final_obs = np.asarray(info["final_observation"])
            break
        states.append(state)
    return states, rewards, final_obs


def test_rollout_states_stops_at_first_termination_with_terminal_state():
    env, env_params = envs.make("CartPole-v1")
    key = jax.random.key(3)
    states, rewards = render.rollout_states(key, _always_zero, None, env, env_params)
    ref_states, ref_rewards, final_obs = _reference_episode(key, env, env_params)

    assert len(states) == len(rewards) == len(ref_rewards) < 500
    assert rewards[0] == 0.0
    np.testing.assert_allclose(rewards, ref_rewards)
    fields = ("x", "x_dot", "theta", "theta_dot")
    for ours, ref in zip(states[:-1], ref_states, strict=True):
        for f in fields:
            np.testing.assert_allclose(getattr(ours, f), getattr(ref, f), rtol=1e-6, atol=1e-6)
    # The last state is the pre-reset terminal state (its observation is final_observation).
    terminal = np.array([getattr(states[-1], f) for f in fields])
    np.testing.assert_allclose(terminal, final_obs, rtol=1e-6, atol=1e-6)
    assert abs(terminal[2]) > env_params.theta_threshold_radians or abs(terminal[0]) > 2.4
    assert int(states[-1].time) == len(states) - 1


def test_rollout_states_max_steps():
    env, env_params = envs.make("Pendulum-v1")
    states, rewards = render.rollout_states(
        jax.random.key(0), _zero_torque, None, env, env_params, max_steps=7
    )
    assert len(states) == len(rewards) == 8
    assert [int(s.time) for s in states] == list(range(8))


def _gif_frames(path: Path) -> int:
    from PIL import Image

    assert path.read_bytes()[:6] == b"GIF89a"
    with Image.open(path) as im:
        return im.n_frames


def test_save_gif_cartpole(tmp_path):
    pytest.importorskip("pygame")
    env, env_params = envs.make("CartPole-v1")
    states, rewards = render.rollout_states(jax.random.key(3), _always_zero, None, env, env_params)
    info = render.save_gif(states, rewards, env, env_params, tmp_path / "cp.gif")
    assert info.frames == len(states) and info.stride == 1
    assert _gif_frames(tmp_path / "cp.gif") == len(states) > 1


def test_save_gif_pendulum_subsampled(tmp_path):
    pytest.importorskip("pygame")
    env, env_params = envs.make("Pendulum-v1")
    states, rewards = render.rollout_states(jax.random.key(0), _zero_torque, None, env, env_params)
    assert len(states) == 201  # Pendulum never terminates: truncated at 200 steps
    info = render.save_gif(states, rewards, env, env_params, tmp_path / "pd.gif", max_frames=8)
    assert 2 <= info.frames <= 8
    assert _gif_frames(tmp_path / "pd.gif") == info.frames


def test_save_gif_without_pygame_raises_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pygame", None)  # `import pygame` fails
    env, env_params = envs.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), env_params)
    with pytest.raises(render.RenderUnavailable, match=r'pip install -e "\.\[viz\]"') as err:
        render.save_gif([state, state], [0.0, 1.0], env, env_params, tmp_path / "x.gif")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x.gif").exists()


@pytest.mark.parametrize("background, ink", [(0, 255), (255, 0)])
def test_caption_contrasts_with_the_background(background, ink):
    """LunarLander's sky is black, CartPole's is white: the caption stays readable on both."""
    from PIL import Image

    from rljax.io import render

    image = Image.new("RGB", (300, 200), (background,) * 3)
    pixels = np.asarray(render._caption(image, "step 10   return 1.0").convert("L"))
    changed = pixels != background
    assert changed.any()
    # Antialiased glyphs: the strongest pixels reach (nearly) the ink colour.
    assert np.abs(pixels[changed].astype(int) - ink).min() < 40


def test_lunar_lander_frame_draws_sky_moon_flags_lander_and_flames():
    import jax

    from rljax import lunar_lander as ll

    env = ll.LunarLander()
    _, state = env.reset(jax.random.key(0), env.default_params)
    frame = render.lunar_lander_frame(state)
    assert frame.shape == (ll.VIEWPORT_H, ll.VIEWPORT_W, 3) and frame.dtype == np.uint8
    assert (frame[5, 5] == 0).all() and (frame[-2, 5] == 255).all()  # sky over the moon
    x, y = np.asarray(state.pos[0]) * ll.SCALE  # the lander's centre of mass, in pixels
    assert tuple(frame[int(ll.VIEWPORT_H - y), int(x)]) == (128, 102, 230)
    flag_x = int(np.asarray(state.terrain)[ll.CHUNKS // 2 - 1, 0] * ll.SCALE)
    pole = frame[: int(ll.VIEWPORT_H - ll.HELIPAD_Y * ll.SCALE), flag_x]
    assert (pole == (204, 204, 0)).all(-1).any() or (pole == 255).all(-1).sum() >= 40
    # Flames: none after reset's no-op; the main and the left engine at full power.
    flame = lambda f: (f == (255, 140, 0)).all(-1)  # noqa: E731
    assert not flame(frame).any()
    lower = state.pos - jax.numpy.array([0.0, 5.0])  # 150 px down: the side engines in view
    fired = state.replace(pos=lower, engines=jax.numpy.array([1.0, -1.0]))
    rows, cols = np.nonzero(flame(render.lunar_lander_frame(fired)))
    assert rows.max() > ll.VIEWPORT_H - (y - 150) + 15  # below the lander
    assert cols.min() < x - 20  # beyond its left side
