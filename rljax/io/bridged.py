"""Train agents on Gymnasium environments through the host bridge; results as the gymnax runner.

Per update: every seed's vector envs are stepped on the host (one jitted, seed-vmapped policy
call per step, :mod:`rljax.envs_gymnasium`), then ONE jitted, seed-vmapped ``learn_step``
trains all seeds on their batches. The results folder matches
:func:`rljax.io.experiment.train_and_evaluate`'s (config, metrics.csv, summary.json,
curves.png, episode.gif), without checkpoints: Gymnasium env state lives on the host.

Every agent trains here through the same protocol as on gymnax (:class:`rljax.agents.Agent`):
its behaviour policy acts on the host's observations and its ``learn_step`` learns, jitted.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rljax import envs_gymnasium, evaluation
from rljax.agents import Agent, ConfigError
from rljax.io import experiment
from rljax.run import loop

EMA_ALPHA = 0.05  # the Keras tutorial's running reward: 0.05 * episode + 0.95 * running


def env_seeds(seed: int, num_seeds: int, stream: int) -> list[int]:
    """Run ``i``'s Gymnasium seed, from ``(seed, i, stream)`` only (as :func:`run_keys`).

    Streams: 0 training, 1 evaluation, 2 the GIF.
    """
    return [
        int(np.random.SeedSequence([seed, i, stream]).generate_state(1)[0] & 0x7FFFFFFF)
        for i in range(num_seeds)
    ]


def running_rewards(
    ema: np.ndarray, count: np.ndarray, traj: Any, thresholds: Sequence[float], passed: dict
) -> None:
    """Advance each seed's Keras running reward over a batch's completed episodes, in order.

    ``ema`` and ``count`` ([S]) are updated in place; ``passed[thr][s]`` records the number of
    completed episodes when seed ``s``'s running reward first reached ``thr``.
    """
    done = np.asarray(traj.done)  # [S, T, N]
    rets = np.asarray(traj.episode_return)
    for s in range(done.shape[0]):
        for r in rets[s][done[s]]:  # time-major, then env: the order episodes ended
            ema[s] = EMA_ALPHA * r + (1.0 - EMA_ALPHA) * ema[s]
            count[s] += 1
            for thr in thresholds:
                if passed[thr][s] is None and ema[s] >= thr:
                    passed[thr][s] = int(count[s])


def train_and_evaluate(
    agent: Agent,
    config: Any,
    env_name: str,
    num_seeds: int,
    seed: int,
    out: Path,
    *,
    num_chunks: int = 50,
    eval_episodes: int = 100,
    quiet: bool = False,
    vector_mode: str = "sync",
    running_thresholds: Sequence[float] = (),
    visuals: bool = True,
    extra_summary: dict[str, Any] | None = None,
) -> experiment.RunResult:
    """Train ``num_seeds`` runs on a Gymnasium env, evaluate them, write the results folder.

    Run ``i``'s network and update key is ``split(fold_in(key(seed), i))[0]`` as in the gymnax
    runner; its env seeds come from ``(seed, i)`` (:func:`env_seeds`). ``env_steps`` in
    metrics.csv counts the steps each seed learned from: in Monte-Carlo mode the steps of its
    episodes (an update steps all seeds' envs until every env has ended its episode, so the
    steps simulated, ``env_steps_simulated`` in the summary, are more). The summary adds the
    Keras running reward (EMA 0.05 of completed-episode returns) per seed and, for each
    threshold in ``running_thresholds`` and the env's ``reward_threshold``, the episode count
    at which it first passed (None: never).

    Raises:
      NonFiniteError: if parameters or losses become non-finite.
    """
    spec = envs_gymnasium.spec(env_name)
    coll = agent.collection(config, spec)
    episodic, rollout_length = coll.episodic, coll.num_steps
    n_warm = agent.warmup_updates(config, spec)
    steps_per_update = config.steps_per_update(spec)
    num_updates = config.total_steps // steps_per_update
    lengths = experiment.chunk_lengths(num_updates, num_chunks)

    out.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()
    host = envs_gymnasium.HostEnvs(
        [
            envs_gymnasium.make_vector(env_name, config.num_envs, s, vector_mode)
            for s in env_seeds(seed, num_seeds, 0)
        ]
    )
    keys = experiment.run_keys(seed, num_seeds)
    split = jax.vmap(jax.random.split)(keys)
    train_keys, eval_keys = split[:, 0], split[:, 1]
    roll_keys = jax.vmap(jax.random.fold_in, (0, None))(train_keys, 1)

    t = time.perf_counter()
    state = jax.jit(jax.vmap(loop.init_fn(agent, config, spec)))(train_keys)
    policies = {w: agent.make_policy(config, spec, w) for w in (n_warm > 0, False)}
    obs = np.asarray(host.reset())
    _, action, log_prob = envs_gymnasium.policy_step(
        roll_keys, state.agent, obs, policy=policies[False]
    )
    shapes = _traj_shapes(spec, rollout_length, obs, action, log_prob)
    learners = {
        w: jax.jit(jax.vmap(loop.learn_fn(agent, config, spec, w))).lower(state, shapes).compile()
        for w in policies
    }
    compile_time = time.perf_counter() - t

    thresholds = sorted({*running_thresholds, spec.solved_threshold} - {None})
    ema = np.zeros((num_seeds,), np.float64)
    learned = np.zeros((num_seeds,), np.int64)  # env steps of the batches learned from
    ep_count = np.zeros((num_seeds,), np.int64)
    passed: dict[float, list] = {thr: [None] * num_seeds for thr in thresholds}

    progress = experiment.Progress(num_updates * steps_per_update, num_seeds, quiet)
    train_start = time.perf_counter()
    update_count = 0
    header = None
    try:
        with open(out / "metrics.csv", "w", newline="") as f:
            writer = csv.writer(f)
            for n in lengths:
                chunk = []
                for u in range(update_count, update_count + n):
                    warm = u < n_warm
                    collect = (
                        envs_gymnasium.host_episodes if episodic else envs_gymnasium.host_rollout
                    )
                    roll_keys, traj = collect(
                        roll_keys, policies[warm], state.agent, host, rollout_length
                    )
                    state, metrics = learners[warm](state, traj)
                    running_rewards(ema, ep_count, traj, thresholds, passed)
                    if episodic:  # the first episodes' steps (the rest are masked out)
                        learned += np.where(traj.done, traj.episode_length, 0).sum((1, 2))
                    else:
                        learned += traj.reward[0].size
                    chunk.append(metrics)
                update_count += n
                stacked = jax.tree.map(lambda *xs: np.stack(xs, axis=1), *jax.device_get(chunk))
                per_seed = experiment._summarise_chunk(stacked)
                per_seed["ema_return"] = ema.copy()
                experiment._check_finite(state, per_seed, update_count, agent.params(state.agent))
                if header is None:
                    header = ["seed", "update", "env_steps", *per_seed]
                    writer.writerow(header)
                for s in range(num_seeds):
                    row = [s, update_count, int(learned[s])]
                    for k in header[3:]:
                        v = float(per_seed[k][s])
                        row.append("" if math.isnan(v) else f"{v:.6g}")
                    writer.writerow(row)
                f.flush()
                rets = per_seed["episode_return"]
                progress.update(
                    update_count * steps_per_update,
                    float(np.nanmean(rets)) if np.isfinite(rets).any() else math.nan,
                )
    finally:
        host.close()
    jax.block_until_ready(state)
    train_time = time.perf_counter() - train_start
    progress.close()
    played = int(host.steps.sum())

    t = time.perf_counter()
    act = agent.make_act(config, spec)
    eval_seeds = env_seeds(seed, num_seeds, 1)
    # Evaluation always steps synchronously: one process per evaluation episode would not pay.
    greedy_returns = envs_gymnasium.evaluate(
        act, agent.params(state.agent), env_name, eval_seeds, eval_episodes, greedy=True
    )
    sampled_returns = envs_gymnasium.evaluate(
        act,
        agent.params(state.agent),
        env_name,
        eval_seeds,
        eval_episodes,
        greedy=False,
        key=jax.vmap(jax.random.fold_in, (0, None))(eval_keys, 1),
    )
    eval_time = time.perf_counter() - t

    from rljax import stats

    greedy_mean = greedy_returns.mean(1)
    solved = evaluation.solved(greedy_mean, spec)
    agg = stats.aggregate(greedy_mean, reps=2000, seed=0)
    summary: dict[str, Any] = {
        "agent": agent.name,
        "env": env_name,
        "bridge": f"gymnasium {vector_mode} vector env, {config.num_envs} envs per seed",
        "num_seeds": num_seeds,
        "seed": seed,
        "total_steps": int(num_updates * steps_per_update),
        "env_steps_learned": [int(x) for x in learned],
        "env_steps_simulated": [int(x) for x in host.steps],
        "num_updates": num_updates,
        "eval_episodes": eval_episodes,
        "eval_returns": [round(float(x), 4) for x in greedy_mean],
        "eval_returns_sampled": [round(float(x), 4) for x in sampled_returns.mean(1)],
        "solved_threshold": spec.solved_threshold,
        "solved": None if solved is None else [bool(x) for x in solved],
        "solved_count": None if solved is None else int(np.sum(solved)),
        "solved_fraction": None if solved is None else float(np.mean(solved)),
        "episodes_to_solve": [
            int(x) if x >= 0 else None for x in np.asarray(state.window.solved_at)
        ],
        "running_reward": [round(float(x), 4) for x in ema],
        "running_reward_passed_at": {
            str(thr): {
                "episodes": passed[thr],
                "fraction": float(np.mean([p is not None for p in passed[thr]])),
            }
            for thr in thresholds
        },
        **{k: agg[k] for k in ("iqm", "iqm_ci", "mean", "mean_ci", "median", "median_ci")},
        "compile_time_s": round(compile_time, 3),
        "train_time_s": round(train_time, 3),
        "eval_time_s": round(eval_time, 3),
        "wall_time_s": round(time.perf_counter() - wall_start, 3),
        "steps_per_second": round(played / max(train_time, 1e-9), 1),
        "versions": {**experiment.versions(), "gymnasium": _version("gymnasium")},
        **(extra_summary or {}),
    }
    if visuals:
        try:
            summary["median_seed"] = _write_visuals(
                out, agent, config, env_name, spec, state, greedy_mean, seed
            )
        except Exception as e:  # a failed plot must not cost a long run its results
            print(f"curves.png/episode.gif not written: {type(e).__name__}: {e}", file=sys.stderr)
    return experiment.RunResult(state=state, summary=summary)


def _traj_shapes(spec, t, obs, action, log_prob):
    """Shapes and dtypes of the host rollouts' Transition [S, T, N, ...] (to compile ahead)."""
    s, n = action.shape[:2]
    sds = lambda x: jax.ShapeDtypeStruct((s, t, *x.shape[1:]), x.dtype)
    flat = lambda dtype: jax.ShapeDtypeStruct((s, t, n), dtype)
    return envs_gymnasium.Transition(
        obs=sds(obs),
        action=sds(action),
        log_prob=sds(log_prob),
        reward=flat(np.float32),
        terminated=flat(np.bool_),
        truncated=flat(np.bool_),
        next_obs=sds(obs),
        episode_return=flat(np.float32),
        episode_length=flat(np.int32),
    )


def _version(pkg: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


def _write_visuals(out, agent, config, env_name, spec, state, greedy_mean, seed):
    """curves.png (all seeds) and episode.gif (the median seed, Gymnasium's rgb_array frames)."""
    from rljax.io import plots, render

    plots.plot_curves(
        [(f"{agent.name} ({len(greedy_mean)} seeds)", plots.read_metrics(out / "metrics.csv"))],
        out / "curves.png",
        threshold=spec.solved_threshold,
        title=f"{agent.name} on {spec.name} (Gymnasium)",
    )
    median_seed = int(np.argsort(greedy_mean)[len(greedy_mean) // 2])
    params = jax.tree.map(lambda x: x[median_seed], agent.params(state.agent))
    act = agent.make_act(config, spec)
    try:
        render._require_viz()
        frames, steps, returns, fps, stride = envs_gymnasium.episode_frames(
            act, params, env_name, env_seeds(seed, len(greedy_mean), 2)[median_seed]
        )
        captions = [
            f"{spec.name}   step {t}   return {r:.1f}" for t, r in zip(steps, returns, strict=True)
        ]
        render.write_gif(frames, captions, fps / stride, out / "episode.gif")
    except (render.RenderUnavailable, ConfigError) as e:
        print(f"episode.gif skipped: {e}", file=sys.stderr)
    return median_seed
