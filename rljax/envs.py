"""gymnax environments by name, vectorised reset/step, and episode bookkeeping.

gymnax 1.0 semantics (docs/conventions.md): ``step`` returns
``(obs, state, reward, terminated, truncated, info)`` and auto-resets; at an episode end
``obs`` is already the next episode's first observation and ``info["final_observation"]`` is
the real last one. Only ``terminated`` zeroes a bootstrap.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import chex
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from rljax import _checks
from rljax.types import Array, EpisodeWindow, PRNGKey

# Environments rljax trains on, with their "solved" return threshold (None: no threshold).
ENVS: dict[str, float | None] = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": None,
    "MountainCar-v0": None,
    "Pendulum-v1": None,
    "MountainCarContinuous-v0": None,
    "LunarLander-v3": 200.0,  # rljax's own JAX port (rljax.lunar_lander)
    "LunarLanderContinuous-v3": 200.0,
}


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static facts about an environment that networks and agents need."""

    name: str
    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int  # number of discrete actions, or the action dimension if continuous
    action_low: float  # bounds of a continuous action (0 for discrete)
    action_high: float
    max_steps: int  # the time limit (truncation) of an episode
    solved_threshold: float | None


def make(env_name: str) -> tuple[Any, Any]:
    """Make a gymnax environment: ``(env, env_params)``.

    ``brax:NAME[:BACKEND]`` makes a Brax env behind a gymnax adapter (:mod:`rljax.envs_brax`,
    the ``brax`` extra).

    Raises:
      ValueError: naming the valid environments if ``env_name`` is not one of them.
    """
    if env_name.startswith("brax:"):
        from rljax import envs_brax

        return envs_brax.make(env_name)
    if env_name not in ENVS:
        raise ValueError(f"unknown env {env_name!r}; valid: {', '.join(ENVS)}")
    if env_name.startswith("LunarLander"):
        from rljax import lunar_lander

        env = lunar_lander.LunarLander(continuous=env_name == "LunarLanderContinuous-v3")
        return env, env.default_params
    return gymnax.make(env_name)


def spec(env: Any, env_params: Any) -> EnvSpec:
    """Static :class:`EnvSpec` of a gymnax environment."""
    action_space = env.action_space(env_params)
    obs_shape = tuple(env.observation_space(env_params).shape)
    if isinstance(action_space, spaces.Discrete):
        discrete, n, low, high = True, int(action_space.n), 0.0, 0.0
    elif isinstance(action_space, spaces.Box):
        discrete = False
        n = int(action_space.shape[0]) if action_space.shape else 1
        # numpy, not jnp: the bounds are concrete, so this stays safe inside jit.
        low, high = float(np.min(action_space.low)), float(np.max(action_space.high))
    else:
        raise ValueError(f"unsupported action space {type(action_space).__name__}")
    return EnvSpec(
        name=env.name,
        obs_shape=obs_shape,
        discrete=discrete,
        num_actions=n,
        action_low=low,
        action_high=high,
        max_steps=int(env_params.max_steps_in_episode),
        solved_threshold=ENVS.get(env.name),
    )


class VecEnvState(NamedTuple):
    """State of ``num_envs`` environments plus their running episode statistics."""

    inner: Any  # the gymnax states, leading axis [N]
    episode_return: Array  # shape=(N,), dtype=float32; return so far of the current episode.
    episode_length: Array  # shape=(N,), dtype=int32; steps so far of the current episode.


def reset(key: PRNGKey, env: Any, env_params: Any, num_envs: int) -> tuple[VecEnvState, Array]:
    """Reset ``num_envs`` environments. Returns ``(state, obs)`` with obs [N, *obs_shape]."""
    keys = jax.random.split(key, num_envs)
    obs, inner = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
    zeros = jnp.zeros((num_envs,), jnp.float32)
    return VecEnvState(inner, zeros, jnp.zeros((num_envs,), jnp.int32)), obs


def step(
    key: PRNGKey, env: Any, env_params: Any, state: VecEnvState, action: Array
) -> tuple[Array, VecEnvState, Array, Array, Array, dict[str, Array]]:
    """Step ``N`` environments at once, gymnax 1.0 style, with episode bookkeeping.

    Returns:
      ``(obs, state, reward, terminated, truncated, info)``, each with leading axis [N].
      ``info["final_observation"]`` is the true successor of the previous observation (equal to
      ``obs`` except at episode ends). ``info["episode_return"]`` and
      ``info["episode_length"]`` are those of episodes that ended at this step (0 elsewhere).
    """
    num_envs = state.episode_return.shape[0]
    chex.assert_shape(action, (num_envs, ...))
    keys = jax.random.split(key, num_envs)
    if jnp.issubdtype(action.dtype, jnp.floating):  # match the env's float width (x64 too)
        action = action.astype(jnp.result_type(float))
    obs, inner, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
        keys, state.inner, action, env_params
    )
    reward = reward.astype(jnp.float32)
    terminated = terminated.astype(bool)
    truncated = truncated.astype(bool)
    done = terminated | truncated
    ep_return = state.episode_return + reward
    ep_length = state.episode_length + 1
    out_info = {
        "final_observation": info["final_observation"],
        "episode_return": jnp.where(done, ep_return, 0.0),
        "episode_length": jnp.where(done, ep_length, 0),
    }
    new_state = VecEnvState(
        inner=inner,
        episode_return=jnp.where(done, 0.0, ep_return),
        episode_length=jnp.where(done, 0, ep_length),
    )
    return obs, new_state, reward, terminated, truncated, out_info


def episode_window_init(window: int = 100) -> EpisodeWindow:
    """An empty :class:`EpisodeWindow` of the last ``window`` completed episodes."""
    return EpisodeWindow(
        returns=jnp.zeros((window,), jnp.float32),
        count=jnp.zeros((), jnp.int32),
        solved_at=jnp.full((), -1, jnp.int32),
        running=jnp.zeros((), jnp.float32),
    )


RUNNING_ALPHA = 0.05  # the Keras tutorial's running reward: 0.05 * episode + 0.95 * running


def running_reward(
    running: Array, episode_return: Array, done: Array, alpha: float | Array = RUNNING_ALPHA
) -> Array:
    """The running reward after a batch: ``r <- alpha * G + (1 - alpha) * r`` at every
    completed episode, in the order they ended (the Keras tutorial's, alpha 0.05).

    Args:
      running: the running reward before the batch, [].
      episode_return: returns of episodes, any shape (e.g. [T, N], flattened in C order: time
        first, so episodes are folded in the order they ended).
      done: where an episode ended, same shape.
      alpha: the weight of each new episode.

    Returns:
      [] the running reward after the batch (``running`` if no episode ended).
    """
    _checks.same_shape("running_reward", episode_return=episode_return, done=done)
    _checks.shape_is("running_reward", "running", running, (), "a scalar")
    compact, n = _completed_in_order(episode_return, done)
    return _fold_running(running, compact, n, alpha)


def _completed_in_order(episode_return: Array, done: Array) -> tuple[Array, Array]:
    """``(compact [K], n)``: the batch's n completed-episode returns in the order they ended
    (C order), then zeros. Each completed episode is scattered to its rank among them (a
    prefix count), which is several times cheaper than sorting on "not done"."""
    d = done.reshape(-1).astype(bool)
    ret = episode_return.reshape(-1).astype(jnp.float32)
    k = d.shape[0]
    slot = jnp.where(d, jnp.cumsum(d) - 1, k)  # k is out of range: dropped
    compact = jnp.zeros((k,), jnp.float32).at[slot].set(ret, mode="drop")
    return compact, d.sum().astype(jnp.int32)


def _fold_running(running: Array, compact: Array, n: Array, alpha: float | Array) -> Array:
    """Fold the first ``n`` of ``compact`` into ``running``: episode j is followed by n - 1 - j
    others, so r = (1 - alpha)^n * running + sum_j alpha * (1 - alpha)^(n - 1 - j) * G_j."""
    after = n - 1 - jnp.arange(compact.shape[0])
    keep = 1.0 - alpha
    weights = jnp.where(after >= 0, alpha * keep ** jnp.maximum(after, 0), 0.0)
    return (keep**n * running + (weights * compact).sum()).astype(jnp.float32)


def episode_window_update(
    window: EpisodeWindow, episode_return: Array, done: Array, threshold: float | None
) -> EpisodeWindow:
    """Append the episodes completed in a batch, in order, and check the solved criterion;
    fold them into the running reward (:func:`running_reward`).

    A run is solved at the first completed episode after which the mean return of the last
    ``len(window.returns)`` episodes is at least ``threshold``; ``solved_at`` records how many
    episodes had completed then (and never changes afterwards).

    Args:
      window: the current window.
      episode_return: returns of episodes, any shape (e.g. [T, N], flattened in C order: time
        first, so episodes are appended in the order they ended).
      done: where an episode ended, same shape.
      threshold: the solved threshold, or None (never solved).
    """
    chex.assert_equal_shape([episode_return, done])
    size = window.returns.shape[0]
    compact, n_new = _completed_in_order(episode_return, done)
    k = compact.shape[0]
    seq = jnp.concatenate([window.returns, compact])  # oldest first
    # Sum of the `size` episodes ending at new episode i (positions i+1 .. size+i of seq): a
    # sliding-window sum, as a convolution with ones (each window added directly, no running-
    # sum differences, so no rounding drift; full float32 precision on every backend).
    idx = jnp.arange(k)
    ones = jnp.ones((size,), jnp.float32)
    window_sum = jnp.convolve(seq[1:], ones, mode="valid", precision=jax.lax.Precision.HIGHEST)
    total_after = window.count + idx + 1
    valid = (idx < n_new) & (total_after >= size)
    solved_now = valid & (window_sum / size >= (jnp.inf if threshold is None else threshold))
    first = jnp.argmax(solved_now)
    solved_at = jnp.where(
        (window.solved_at < 0) & solved_now.any(), window.count + first + 1, window.solved_at
    )
    new_returns = jax.lax.dynamic_slice(seq, (n_new,), (size,))
    running = _fold_running(window.running, compact, n_new, RUNNING_ALPHA)
    return EpisodeWindow(new_returns, window.count + n_new, solved_at.astype(jnp.int32), running)
