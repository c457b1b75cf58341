"""The agent protocol: what the runner (:mod:`rljax.run`) knows of an agent.

An agent is an :class:`Agent` record of pure functions over an :class:`~rljax.envs.EnvSpec`;
:func:`define` builds one from a module's functions. :func:`episode_metrics` is the episode
bookkeeping the runner does for every agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

from rljax import envs
from rljax.types import Array, EpisodeWindow, Transition


def episode_metrics(
    window: EpisodeWindow, traj: Transition, threshold: float | None
) -> tuple[EpisodeWindow, dict[str, Array]]:
    """Update the solved window with a trajectory's completed episodes; return their metrics.

    ``traj`` has leading axes [T, N]; episodes are appended in the order they ended. Metrics:
    the completed episodes' return sum and count and the running reward after the batch.
    """
    done = traj.done
    window = envs.episode_window_update(window, traj.episode_return, done, threshold)
    metrics = {
        "episode_return_sum": jnp.sum(jnp.where(done, traj.episode_return, 0.0)),
        "episode_count": jnp.sum(done).astype(jnp.int32),
        "running_reward": window.running,
    }
    return window, metrics


class Collection(NamedTuple):
    """How an agent collects experience for one update (per seed).

    Attributes:
      num_envs: environments stepped side by side.
      num_steps: steps per environment per update; with ``episodic`` the env's time limit.
      episodic: one fresh episode per environment per update (Monte-Carlo modes): every env
        is reset, played to its time limit, and ``terminated``/``truncated`` are kept only at
        its first episode end (:func:`rljax.rollout.first_episode_mask` selects the steps).
    """

    num_envs: int
    num_steps: int
    episodic: bool = False


class Agent(NamedTuple):
    """The agent protocol: what the runner (:mod:`rljax.run`) knows of an agent.

    An agent sees an :class:`~rljax.envs.EnvSpec`, never an env object; the runner collects
    experience (inside jit for gymnax, in Python for host envs) and hands it to ``learn_step``.

    Attributes:
      name: the ``--agent`` name.
      config: the frozen config class; ``config(**kwargs)`` builds one, ``.validate(spec)``
        checks it, ``.steps_per_update(spec)`` is the env steps one update simulates per seed.
      presets: named keyword overrides of the config defaults (``"default"`` is empty).
      init: ``init(key, config, spec) -> state``, a run's learner state (a NamedTuple with
        ``key``, ``update`` and ``env_steps`` fields; the runner advances the counters).
      collection: ``collection(config, spec) -> Collection``.
      make_policy: ``make_policy(config, spec, warmup) -> policy`` with
        ``policy(key, state, obs[N]) -> (action[N], log_prob[N])``, the behaviour policy
        (exploration included; ``warmup`` True during the first ``warmup_updates``). The
        runner clips continuous actions to the bounds for the env only and stores the raw
        action with its log-prob.
      learn_step: ``learn_step(state, traj, config, spec, warmup) -> (state, metrics)``:
        everything after collection, on a :class:`~rljax.types.Transition` [T, N] whose
        ``next_obs`` is the final observation at episode ends.
      make_act: ``make_act(config, spec) -> act(key, params, obs[N], greedy) -> action[N]``,
        the evaluation policy (greedy: the mode).
      params: ``params(state)``, the parameters ``act`` takes.
      warmup_updates: ``warmup_updates(config, spec)``: updates that act with the warm-up
        policy and learn with ``warmup=True`` (the runner runs them as their own phase, so
        nothing is computed and discarded under ``vmap``).
      replay_obs_stats: the agent replays stored experience and normalises what it samples
        itself, with its state's ``obs_stats`` (:mod:`rljax.agents.normalize` sets them), so
        its buffer keeps raw observations.
    """

    name: str
    config: type
    presets: dict[str, dict[str, Any]]
    init: Callable
    collection: Callable
    make_policy: Callable
    learn_step: Callable
    make_act: Callable
    params: Callable = lambda state: state.params
    warmup_updates: Callable = lambda config, spec: 0
    replay_obs_stats: bool = False


def counters_init() -> dict[str, Array]:
    """Zero ``update`` and ``env_steps`` counters (int32 scalars) for a state's fields."""
    return {"update": jnp.zeros((), jnp.int32), "env_steps": jnp.zeros((), jnp.int32)}


def steps_collection(config: Any, spec: envs.EnvSpec) -> Collection:
    """``num_steps`` steps in each of ``num_envs`` envs per update, episodes continuing."""
    del spec
    return Collection(config.num_envs, config.num_steps)


def define(name: str, config: type, presets: dict, namespace: dict, **fields: Any) -> Agent:
    """The :class:`Agent` record of a module whose protocol functions have the protocol's
    names (``init``, ``collection``, ``make_policy``, ``learn_step``, ``make_act``, taken
    from ``namespace`` unless given in ``fields``), with the config's normalisation options
    (:func:`rljax.agents.normalize.wrap`)."""
    from rljax.agents import normalize  # noqa: PLC0415 (it builds on this module)

    names = ("init", "collection", "make_policy", "learn_step", "make_act")
    found = {n: namespace[n] for n in names if n not in fields}
    return normalize.wrap(Agent(name=name, config=config, presets=presets, **found, **fields))
