"""Observation normalisation and return-based reward scaling, for every agent.

Two config fields every agent has (:class:`rljax.agents.fields.Normalization`) turn them on:

* ``normalize_obs``: running mean and variance of the observations in the agent state (per
  seed; under ``vmap`` each seed has its own), updated from the collected observations only.
  Observations are normalised, ``clip((o − mean) / sqrt(var + 1e-8), ±10)``, with the SAME
  statistics at collection, in learning (the update's batch is normalised with the statistics
  its actions were chosen with; the statistics then absorb the batch) and at evaluation (the
  statistics are part of the parameters ``act`` takes). They are saved in checkpoints with the
  rest of the state. Replay-based agents (``Agent.replay_obs_stats``) store raw observations
  and normalise each sampled batch with the current statistics, which absorb each update's
  observations before it learns (as rejax and Stable-Baselines3 do); stored observations
  normalised with old statistics would drift away from what the networks now see.
* ``scale_rewards``: learning sees r / sqrt(var(R) + 1e-8), with R the running discounted
  return of each env (reset at episode ends) and its variance tracked as above (as
  Stable-Baselines3's ``VecNormalize``). Episode returns in the logs stay unscaled.

:func:`wrap` makes an agent of the protocol with both options; with both off it IS the agent
(the same state, the same computations), so a plain run is unchanged bit for bit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rljax import envs
from rljax.agents import protocol
from rljax.types import Array, Transition

CLIP, EPS = 10.0, 1e-8


class RunningStats(NamedTuple):
    """Mean and variance of everything seen so far (Chan et al.'s parallel update)."""

    mean: Array
    var: Array
    count: Array  # [] float32; starts at 1e-4 so the first batch dominates


def stats_init(shape: tuple[int, ...]) -> RunningStats:
    return RunningStats(jnp.zeros(shape), jnp.ones(shape), jnp.asarray(1e-4, jnp.float32))


def stats_update(stats: RunningStats, x: Array) -> RunningStats:
    """Absorb a batch ``x`` [B, *shape] into the statistics."""
    n = x.shape[0]
    batch_mean, batch_var = jnp.mean(x, axis=0), jnp.var(x, axis=0)
    delta = batch_mean - stats.mean
    total = stats.count + n
    m2 = stats.var * stats.count + batch_var * n + jnp.square(delta) * stats.count * n / total
    return RunningStats(stats.mean + delta * n / total, m2 / total, total)


def normalize(stats: RunningStats, x: Array) -> Array:
    """``clip((x − mean) / sqrt(var + 1e-8), −10, 10)``."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + EPS), -CLIP, CLIP)


class NormState(NamedTuple):
    """An agent's state with the normalisers (only when an option is on)."""

    inner: Any  # the agent's own state
    obs_stats: RunningStats  # [*obs_shape]
    return_stats: RunningStats  # []
    returns: Array  # [num_envs] running discounted return of each env
    update: Array
    env_steps: Array


class NormParams(NamedTuple):
    """What ``act`` takes: the agent's parameters and the observation statistics."""

    params: Any
    obs_stats: RunningStats


def enabled(config: Any) -> bool:
    return bool(getattr(config, "normalize_obs", False) or getattr(config, "scale_rewards", False))


def _inner(state: NormState) -> Any:
    """The agent's state, its counters in step with the wrapper's (the runner moves those)."""
    return state.inner._replace(update=state.update, env_steps=state.env_steps)


def _obs(config: Any, stats: RunningStats, obs: Array) -> Array:
    return normalize(stats, obs) if config.normalize_obs else obs


def scale_rewards(state: NormState, traj: Transition, gamma) -> tuple[Array, NormState]:
    """Rewards [T, N] divided by the std of the discounted return, and the updated state."""

    def step(ret, x):
        r, done = x
        ret = ret * gamma + r
        return jnp.where(done, 0.0, ret), ret

    returns, seen = jax.lax.scan(step, state.returns, (traj.reward, traj.done))
    stats = stats_update(state.return_stats, seen.reshape(-1))
    scaled = traj.reward / jnp.sqrt(stats.var + EPS)
    return scaled, state._replace(return_stats=stats, returns=returns)


def wrap(agent: protocol.Agent) -> protocol.Agent:
    """``agent`` with the two options (see the module docstring)."""

    def init(key, config, spec: envs.EnvSpec):
        inner = agent.init(key, config, spec)
        if not enabled(config):
            return inner
        num_envs = agent.collection(config, spec).num_envs
        return NormState(
            inner,
            stats_init(spec.obs_shape),
            stats_init(()),
            jnp.zeros((num_envs,), jnp.float32),
            inner.update,
            inner.env_steps,
        )

    def make_policy(config, spec, warmup=False):
        policy = agent.make_policy(config, spec, warmup)
        if not enabled(config):
            return policy
        return lambda key, state, obs: policy(
            key, _inner(state), _obs(config, state.obs_stats, obs)
        )

    def learn_step(state, traj: Transition, config, spec, warmup=False):
        if not enabled(config):
            return agent.learn_step(state, traj, config, spec, warmup)
        obs = traj.obs.reshape(-1, *spec.obs_shape)
        absorbed = stats_update(state.obs_stats, obs) if config.normalize_obs else None
        if agent.replay_obs_stats:  # the agent normalises its samples, with the new stats
            learn, inner = traj, _inner(state)._replace(obs_stats=absorbed)
        else:  # the batch as its actions saw it; the stats absorb it afterwards
            seen = _obs(config, state.obs_stats, traj.obs)
            learn = traj._replace(obs=seen, next_obs=_obs(config, state.obs_stats, traj.next_obs))
            inner = _inner(state)
        if config.scale_rewards:
            reward, state = scale_rewards(state, traj, config.gamma)
            learn = learn._replace(reward=reward)
        inner, metrics = agent.learn_step(inner, learn, config, spec, warmup)
        if agent.replay_obs_stats:
            inner = inner._replace(obs_stats=None)
        if config.normalize_obs:
            state = state._replace(obs_stats=absorbed)
        return state._replace(inner=inner), metrics

    def make_act(config, spec):
        act = agent.make_act(config, spec)
        if not enabled(config):
            return act
        return lambda key, p, obs, greedy: act(
            key, p.params, _obs(config, p.obs_stats, obs), greedy
        )

    def params(state):
        if isinstance(state, NormState):
            return NormParams(agent.params(state.inner), state.obs_stats)
        return agent.params(state)

    return agent._replace(
        init=init, make_policy=make_policy, learn_step=learn_step, make_act=make_act, params=params
    )
