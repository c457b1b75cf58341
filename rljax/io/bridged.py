"""Train agents on Gymnasium environments through the host bridge; results as the gymnax runner.

Per update: every seed's vector envs are stepped on the host (one jitted, seed-vmapped policy
call per step, :mod:`rljax.envs_gymnasium`), then ONE jitted, seed-vmapped ``learn_step``
trains all seeds on their batches. The results folder matches
:func:`rljax.io.experiment.train_and_evaluate`'s (config, metrics.csv, summary.json,
curves.png, episode.gif), without checkpoints: Gymnasium env state lives on the host.

An agent trains on bridged envs once it has a :class:`BridgedAgent` entry in :data:`BRIDGED`:
the learning half of its ``update_step`` as ``learn_step(state, traj, config, spec)``.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax import envs, envs_gymnasium, evaluation
from rljax.agents import Agent, ConfigError, a2c, common, ddpg, ppo
from rljax.io import experiment

EMA_ALPHA = 0.05  # the Keras tutorial's running reward: 0.05 * episode + 0.95 * running


class BridgedAgent(NamedTuple):
    """What the bridged runner needs of an agent, all in terms of an EnvSpec (no gymnax env).

    Attributes:
      init: ``init(key, config, spec) -> state`` (environment fields are placeholders).
      learn_step: ``learn_step(state, traj[T, N], config, spec) -> (state, metrics)``.
      make_policy: ``make_policy(config, spec) -> policy(key, params, obs[N]) ->
        (action, log_prob)``; the env receives the action clipped to a Box's bounds, the
        transition keeps the raw one.
      make_act: ``make_act(config, spec) -> act(key, params, obs[N], greedy) -> action``.
      episodic: ``episodic(config) -> bool``: True if each update plays one fresh episode per
        env (Monte-Carlo mode) instead of ``rollout_length(config)`` steps.
      rollout_length: ``rollout_length(config) -> T``, the steps per env per update.
      policy_params: ``policy_params(state)``: what ``policy`` and ``act`` take as params.
    """

    init: Callable
    learn_step: Callable
    make_policy: Callable
    make_act: Callable
    episodic: Callable = lambda config: False
    rollout_length: Callable = lambda config: config.num_steps
    policy_params: Callable = lambda state: state.params


def _on_policy_init(network, optimizer, state_cls):
    """``init(key, config, spec)`` for an on-policy agent whose state holds one ``params``.

    Splits the key as the agent's gymnax ``init`` does (key, network key, env key), so run
    ``i``'s initial parameters are the same on both paths.
    """

    def init(key, config, spec: envs.EnvSpec):
        key, net_key, _ = jax.random.split(key, 3)
        _, net_init = network(config, spec)
        obs = jnp.zeros((config.num_envs, *spec.obs_shape), jnp.float32)
        params = net_init(net_key, obs[0])
        return state_cls(
            params=params,
            opt_state=optimizer(config, spec).init(params),
            env_state=None,  # the envs live on the host
            obs=obs,
            window=envs.episode_window_init(),
            key=key,
            update=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32),
        )

    return init


def _a2c_act(config: a2c.A2CConfig, spec: envs.EnvSpec):
    apply, _ = a2c._network(config, spec)
    return common.categorical_act(lambda params, obs: apply(params, obs)[0])


def _ddpg_act(config: ddpg.DDPGConfig, spec: envs.EnvSpec):
    act = ddpg.act_fn(config, spec)  # takes the actor's params; the bridge passes more
    return lambda key, params, obs, greedy: act(key, params.actor_params, obs, greedy)


# DDPG and TD3 (one engine, TD3Config's settings): an update acts policy_delay steps with one
# actor; the exploration policy reads warm-up and σ from the counters in its params.
_DDPG = BridgedAgent(
    init=ddpg.init_from_spec,
    learn_step=ddpg.learn_step,  # splits state.key as update_step does
    make_policy=ddpg.make_policy,
    make_act=_ddpg_act,
    rollout_length=lambda config: config.policy_delay,
    policy_params=ddpg.exploration_params,
)


BRIDGED: dict[str, BridgedAgent] = {
    "a2c": BridgedAgent(
        init=_on_policy_init(a2c._network, a2c._optimizer, a2c.A2CState),
        learn_step=a2c.learn_step,
        make_policy=a2c.make_policy,
        make_act=_a2c_act,
        episodic=lambda config: config.mode == "monte_carlo",
    ),
    "ppo": BridgedAgent(
        init=_on_policy_init(ppo._network, ppo.optimizer, ppo.PPOState),
        learn_step=ppo.learn_step,  # splits state.key for the minibatch orders
        make_policy=lambda config, spec: ppo.make_policy(config, spec)[0],
        make_act=ppo.act_fn,
    ),
    "ddpg": _DDPG,
    "td3": _DDPG,
}


def check_agent(agent_name: str, env_name: str) -> BridgedAgent:
    """The agent's bridge entry, or a one-line ConfigError naming the agents that have one."""
    if agent_name not in BRIDGED:
        raise ConfigError(
            f"--agent {agent_name} does not train on Gymnasium environments ({env_name}) yet; "
            f"agents that do: {', '.join(BRIDGED)}"
        )
    return BRIDGED[agent_name]


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
    bridge = check_agent(agent.name, env_name)
    spec = envs_gymnasium.spec(env_name)
    episodic = bridge.episodic(config)
    rollout_length = spec.max_steps if episodic else bridge.rollout_length(config)
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
    state = jax.jit(jax.vmap(lambda k: bridge.init(k, config, spec)))(train_keys)
    policy = bridge.make_policy(config, spec)
    obs = np.asarray(host.reset())
    _, action, log_prob = envs_gymnasium.policy_step(
        roll_keys, bridge.policy_params(state), obs, policy=policy
    )
    learn = (
        jax.jit(jax.vmap(lambda s, traj: bridge.learn_step(s, traj, config, spec)))
        .lower(state, _traj_shapes(spec, rollout_length, obs, action, log_prob))
        .compile()
    )
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
                for _ in range(n):
                    if episodic:
                        roll_keys, traj = envs_gymnasium.host_episodes(
                            roll_keys, policy, bridge.policy_params(state), host, spec.max_steps
                        )
                    else:
                        roll_keys, traj = envs_gymnasium.host_rollout(
                            roll_keys, policy, bridge.policy_params(state), host, rollout_length
                        )
                    state, metrics = learn(state, traj)
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
                experiment._check_finite(state, per_seed, update_count, bridge.policy_params(state))
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
    act = bridge.make_act(config, spec)
    eval_seeds = env_seeds(seed, num_seeds, 1)
    # Evaluation always steps synchronously: one process per evaluation episode would not pay.
    greedy_returns = envs_gymnasium.evaluate(
        act, bridge.policy_params(state), env_name, eval_seeds, eval_episodes, greedy=True
    )
    sampled_returns = envs_gymnasium.evaluate(
        act,
        bridge.policy_params(state),
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
                out, agent, bridge, config, env_name, spec, state, greedy_mean, seed
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


def _write_visuals(out, agent, bridge, config, env_name, spec, state, greedy_mean, seed):
    """curves.png (all seeds) and episode.gif (the median seed, Gymnasium's rgb_array frames)."""
    from rljax.io import plots, render

    plots.plot_curves(
        [(f"{agent.name} ({len(greedy_mean)} seeds)", plots.read_metrics(out / "metrics.csv"))],
        out / "curves.png",
        threshold=spec.solved_threshold,
        title=f"{agent.name} on {spec.name} (Gymnasium)",
    )
    median_seed = int(np.argsort(greedy_mean)[len(greedy_mean) // 2])
    params = jax.tree.map(lambda x: x[median_seed], bridge.policy_params(state))
    act = bridge.make_act(config, spec)
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
