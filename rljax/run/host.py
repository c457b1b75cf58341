"""The runner's host family: Gymnasium envs stepped in Python, learning jitted.

Per update: every seed's vector envs are stepped on the host (one jitted, seed-vmapped call of
the agent's behaviour policy per step, :mod:`rljax.envs_gymnasium`), then ONE jitted,
seed-vmapped :func:`rljax.run.loop.learn_fn` trains all seeds on their batches, the same
learning step as on gymnax. No checkpoints: Gymnasium env state lives in the host processes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rljax import envs_gymnasium
from rljax.agents.fields import ConfigError
from rljax.agents.protocol import Agent
from rljax.run import loop, results


def env_seeds(seed: int, num_seeds: int, stream: int) -> list[int]:
    """Run ``i``'s Gymnasium seed, from ``(seed, i, stream)`` only.

    Streams: 0 training, 1 evaluation, 2 the GIF.
    """
    return [
        int(np.random.SeedSequence([seed, i, stream]).generate_state(1)[0] & 0x7FFFFFFF)
        for i in range(num_seeds)
    ]


class HostRuns(results.Runs):
    """S runs of one agent on one Gymnasium env (``gymnasium:ID``).

    Run ``i``'s random streams are those of its key ``keys[i]`` as on gymnax
    (:func:`rljax.run.loop.streams`); its env seeds come from ``(seed, i)``
    (:func:`env_seeds`). ``env_steps`` in metrics.csv counts the steps each seed learned from:
    in Monte-Carlo mode the steps of its episodes (an update steps all seeds' envs until every
    env has ended its episode, so the steps simulated, ``env_steps_simulated`` in the summary,
    are more).
    """

    checkpoints = False

    def __init__(self, agent: Agent, config, env_name, keys, seed, vector_mode, thresholds):
        self.agent, self.config, self.env_name, self.seed = agent, config, env_name, seed
        self.spec = envs_gymnasium.spec(env_name)
        self.coll = agent.collection(config, self.spec)
        self.num_runs = keys.shape[0]
        self.host = envs_gymnasium.HostEnvs(
            [
                envs_gymnasium.make_vector(env_name, config.num_envs, s, vector_mode)
                for s in env_seeds(seed, self.num_runs, 0)
            ]
        )
        self.keys, self.streams = keys, jax.vmap(loop.streams)(keys)
        self.running = results.RunningRewards(self.num_runs, thresholds, self.spec.solved_threshold)
        self.learned = np.zeros((self.num_runs,), np.int64)  # env steps learned from
        self.n_warm = agent.warmup_updates(config, self.spec)
        self.summary = {
            "bridge": f"gymnasium {vector_mode} vector env, {config.num_envs} envs per seed"
        }

    def init(self) -> Any:
        init = loop.init_fn(self.agent, self.config, self.spec)
        return jax.jit(jax.vmap(init))(self.keys)

    def compile(self, state, starts_lengths) -> None:
        """Compile the behaviour policy and the learning step of each phase."""
        del starts_lengths
        agent, config, spec = self.agent, self.config, self.spec
        phases = (self.n_warm > 0, False)
        self.policies = {w: agent.make_policy(config, spec, w) for w in phases}
        obs = np.asarray(self.host.reset())
        _, action, log_prob = envs_gymnasium.policy_step(
            state.key, state.agent, obs, policy=self.policies[False]
        )
        shapes = _traj_shapes(self.coll.num_steps, obs, action, log_prob)

        # The state is donated: the learning step updates it in place instead of copying it
        # every call (a replay agent's buffer is most of it). Every call replaces `state`.
        def learner(warmup: bool):
            learn = jax.vmap(loop.learn_fn(agent, config, spec, warmup))
            lowered = jax.jit(learn, donate_argnums=0).lower(state, shapes)
            return lowered.compile(loop.compiler_options(agent))

        self.learners = {w: learner(w) for w in phases}

    def chunk(self, state, start: int, length: int):
        """``(state, per_seed, env_steps[S], finite[S])`` after updates ``start .. + length``."""
        collect = (
            envs_gymnasium.host_episodes if self.coll.episodic else envs_gymnasium.host_rollout
        )
        chunk = []
        for u in range(start, start + length):
            warm = u < self.n_warm
            key, traj = collect(
                state.key, self.policies[warm], state.agent, self.host, self.coll.num_steps
            )
            state, metrics = self.learners[warm](state._replace(key=key), traj)
            self.running.update(traj)
            if self.coll.episodic:  # the first episodes' steps (the rest are masked out)
                self.learned += np.where(traj.done, traj.episode_length, 0).sum((1, 2))
            else:
                self.learned += traj.reward[0].size
            chunk.append(metrics)
        stacked = jax.tree.map(lambda *xs: np.stack(xs, axis=1), *jax.device_get(chunk))
        per_seed = results.summarise_chunk(stacked)
        leaves = [np.asarray(x) for x in jax.tree.leaves(self.agent.params(state.agent))]
        finite = np.all([np.isfinite(x).reshape(x.shape[0], -1).all(1) for x in leaves], axis=0)
        return state, per_seed, self.learned.copy(), finite

    def evaluate(self, state, episodes: int) -> tuple[np.ndarray, np.ndarray]:
        """Greedy and sampled returns [S, episodes] in fresh synchronous Gymnasium envs."""
        act = self.agent.make_act(self.config, self.spec)
        params = self.agent.params(state.agent)
        seeds = env_seeds(self.seed, self.num_runs, 1)
        run = lambda greedy, key: envs_gymnasium.evaluate(  # noqa: E731
            act, params, self.env_name, seeds, episodes, greedy=greedy, key=key
        )
        greedy, sampled = self.eval_streams()
        return run(True, greedy), run(False, sampled)

    def write_visuals(self, out: Path, params, greedy_mean: np.ndarray) -> int:
        """curves.png and episode.gif (the median seed, Gymnasium's rgb_array frames)."""
        from rljax.io import render

        seed, params, act = results.curves_and_median(
            out, self.agent, self.config, self.spec, params, greedy_mean, " (Gymnasium)"
        )
        try:
            render._require_viz()
            frames, steps, returns, fps, stride = envs_gymnasium.episode_frames(
                act, params, self.env_name, env_seeds(self.seed, len(greedy_mean), 2)[seed]
            )
            captions = [
                f"{self.spec.name}   step {t}   return {r:.1f}"
                for t, r in zip(steps, returns, strict=True)
            ]
            render.write_gif(frames, captions, fps / stride, out / "episode.gif")
        except (render.RenderUnavailable, ConfigError) as e:
            print(f"episode.gif skipped: {e}", file=sys.stderr)
        return seed

    def train_steps_per_second(self, updates: int, num_runs: int, seconds: float) -> float:
        return int(self.host.steps.sum()) / max(seconds, 1e-9)

    def final_summary(self) -> dict[str, Any]:
        return {
            "env_steps_learned": [int(x) for x in self.learned],
            "env_steps_simulated": [int(x) for x in self.host.steps],
            **self.running.summary(),
        }

    def close(self) -> None:
        self.host.close()


def _traj_shapes(t, obs, action, log_prob):
    """Shapes and dtypes of the host rollouts' Transition [S, T, N, ...] (to compile ahead)."""
    s, n = action.shape[:2]
    sds = lambda x: jax.ShapeDtypeStruct((s, t, *x.shape[1:]), x.dtype)  # noqa: E731
    flat = lambda dtype: jax.ShapeDtypeStruct((s, t, n), dtype)  # noqa: E731
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
