"""The runner's gymnax family: every run's collection and learning inside one jitted chunk.

Runs share one ``jit``: a chunk of updates is a ``lax.scan`` per phase (warm-up, learning) of
:func:`rljax.run.loop.update_fn`, mapped over the runs (:func:`rljax.run.parallel.map_runs`:
vmapped blocks, sharded over devices and processes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax import envs, evaluation
from rljax.agents.protocol import Agent
from rljax.run import loop, parallel, results


class GymnaxRuns(results.Runs):
    """S runs of one agent on one gymnax env (see :func:`rljax.run.experiment.train_and_evaluate`).

    ``keys`` [S] are the runs' keys, ``run_configs`` the config with a leading run axis on its
    float leaves, ``devices``/``seed_block`` the layout (:mod:`rljax.run.parallel`),
    ``thresholds`` running-reward thresholds to report (with the env's solved threshold).
    """

    checkpoints = True

    def __init__(
        self, agent: Agent, config, env_name, keys, run_configs, devices, seed_block, thresholds=()
    ):
        self.agent, self.config = agent, config
        self.env, self.env_params = envs.make(env_name)
        self.spec = envs.spec(self.env, self.env_params)
        num_runs = keys.shape[0]
        self.sharding = parallel.run_sharding(devices, num_runs)
        self.block = parallel.default_block() if seed_block == "auto" else seed_block
        self.streams = jax.vmap(loop.streams)(keys)  # on this process: every process has all
        self.run_configs = parallel.put(run_configs, self.sharding)
        self.train_keys = parallel.put(keys, self.sharding)
        self.summary = {"seed_block": self.block, "devices": devices}
        self.summary["backend"] = jax.default_backend()
        self.running = results.RunningRewards(num_runs, thresholds, self.spec.solved_threshold)

    def _map(self, fn):
        return parallel.map_runs(fn, self.block, self.sharding)

    def init_fn(self):
        """The jitted ``init(keys, run_configs) -> Carry``: each device's runs in one ``vmap``.

        One ``vmap`` gives every run the bits it gets alone; blocks (a ``lax.map``) round some
        reset states differently in the last bit, so a seed would start elsewhere when more
        seeds run beside it. Initialisation runs once, so blocks buy nothing here.
        """
        agent, spec, env, env_params = self.agent, self.spec, self.env, self.env_params
        one = lambda k, c: loop.init_fn(agent, c, spec, env, env_params)(k)  # noqa: E731
        init = parallel.map_runs(one, None, self.sharding)
        return parallel.jit_runs(init, self.sharding)

    def init(self) -> Any:
        return self.init_fn()(self.train_keys, self.run_configs)

    def abstract_state(self) -> Any:
        return jax.eval_shape(self.init_fn(), self.train_keys, self.run_configs)

    def compile(self, state, starts_lengths) -> None:
        """Compile each distinct chunk (its phases) once, before training."""
        agent, spec, env, env_params = self.agent, self.spec, self.env, self.env_params

        def chunk(carry, configs, start, length):
            def one(c, cfg):
                return loop.chunk_fn(agent, cfg, spec, env, env_params, start, length)(c)

            return self._map(one)(carry, configs)

        self._compiled, self._parts = {}, {}
        for start, length in starts_lengths:
            key = tuple(loop.phases(agent, self.config, spec, start, length))
            self._parts[start] = key
            if key not in self._compiled:
                fn = parallel.jit_runs(chunk, self.sharding, static_argnums=(2, 3))
                lowered = fn.lower(state, self.run_configs, start, length)
                self._compiled[key] = lowered.compile(loop.compiler_options(agent))
        finite = parallel.jit_runs(_finite_runs, self.sharding)
        self._finite = finite.lower(agent.params(state.agent)).compile()

    def chunk(self, state, start: int, length: int):
        """``(state, per_seed, env_steps[S], finite[S])`` after updates ``start .. + length``."""
        state, metrics = self._compiled[self._parts[start]](state, self.run_configs)
        metrics = parallel.to_host(metrics)
        self.running.update_metrics(metrics)
        per_seed = results.summarise_chunk(metrics)
        finite = parallel.to_host(self._finite(self.agent.params(state.agent)))
        steps = (start + length) * self.config.steps_per_update(self.spec)
        return state, per_seed, np.full(len(finite), steps), finite

    def evaluate(self, state, episodes: int) -> tuple[np.ndarray, np.ndarray]:
        """Greedy and sampled returns [S, episodes], each run with its own config.

        One program plays both: whether a run acts greedily is an argument (a flag per run)
        rather than a constant, so the two evaluations share one compilation.
        """
        agent, spec, env, env_params = self.agent, self.spec, self.env, self.env_params

        def one(k, p, c, greedy):
            act = agent.make_act(c, spec)
            fn = lambda kk, pp, o: jnp.where(  # noqa: E731
                greedy, act(kk, pp, o, True), act(kk, pp, o, False)
            )
            return evaluation.evaluate(k, fn, p, env, env_params, episodes)

        fn = parallel.jit_runs(self._map(one), self.sharding)
        params = agent.params(state.agent)

        def run(keys, greedy: bool):
            flags = parallel.put(jnp.full(keys.shape, greedy), self.sharding)
            keys = parallel.put(keys, self.sharding)
            return parallel.to_host(fn(keys, params, self.run_configs, flags))

        greedy, sampled = self.eval_streams()
        return run(greedy, True), run(sampled, False)

    def write_visuals(self, out: Path, params, greedy_mean: np.ndarray) -> int:
        """curves.png and episode.gif (the median seed's greedy policy); the median seed."""
        from rljax.io import render

        seed, params, act = results.curves_and_median(
            out, self.agent, self.config, self.spec, params, greedy_mean
        )
        key = self.streams.render[seed]
        states, rewards = render.rollout_states(key, act, params, self.env, self.env_params)
        try:
            render.save_gif(states, rewards, self.env, self.env_params, out / "episode.gif")
        except render.RenderUnavailable as e:
            print(f"episode.gif skipped: {e}", file=sys.stderr)
        return seed

    def train_steps_per_second(self, updates: int, num_runs: int, seconds: float) -> float:
        return updates * self.config.steps_per_update(self.spec) * num_runs / max(seconds, 1e-9)

    def final_summary(self) -> dict[str, Any]:
        return self.running.summary()

    def close(self) -> None:
        pass


def _finite_runs(params: Any) -> jax.Array:
    """Per-run flag [S]: every parameter of the run is finite (computed on the devices)."""
    leaves = [jnp.isfinite(x).reshape(x.shape[0], -1).all(1) for x in jax.tree.leaves(params)]
    return jnp.stack(leaves).all(0)
