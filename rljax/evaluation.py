"""Evaluate a policy over many episodes at once (one env per episode, vmapped)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rljax import envs
from rljax.types import Array, Params, PRNGKey

# act(key, params, obs[N, ...]) -> action[N, ...]
Act = Callable[[PRNGKey, Params, Array], Array]


def evaluate(
    key: PRNGKey,
    act: Act,
    params: Params,
    env: Any,
    env_params: Any,
    num_episodes: int = 100,
) -> Array:
    """Returns of ``num_episodes`` complete episodes, played in parallel.

    Each episode runs in its own environment until it terminates or reaches the time limit;
    steps after an episode's end are masked out.

    Returns:
      episode returns, [num_episodes].
    """
    max_steps = int(env_params.max_steps_in_episode)
    reset_key, key = jax.random.split(key)
    env_state, obs = envs.reset(reset_key, env, env_params, num_episodes)

    def _body(carry, step_key):
        env_state, obs, total, alive = carry
        act_key, env_key = jax.random.split(step_key)
        action = act(act_key, params, obs)
        obs, env_state, reward, terminated, truncated, _ = envs.step(
            env_key, env, env_params, env_state, action
        )
        total = total + jnp.where(alive, reward, 0.0)
        alive = alive & ~(terminated | truncated)
        return (env_state, obs, total, alive), None

    init = (env_state, obs, jnp.zeros((num_episodes,)), jnp.ones((num_episodes,), bool))
    (_, _, total, _), _ = jax.lax.scan(_body, init, jax.random.split(key, max_steps))
    return total


def solved(mean_return: Array, spec: envs.EnvSpec) -> Array | None:
    """Whether a mean evaluation return reaches the env's threshold (None if it has none)."""
    if spec.solved_threshold is None:
        return None
    return mean_return >= spec.solved_threshold
