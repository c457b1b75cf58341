"""Collect experience from vectorised gymnax environments with a ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rljax import envs
from rljax.types import Array, PRNGKey, Transition

# policy(key, obs[N, ...]) -> (action[N, ...], log_prob[N]), the agent's state closed over.

UNROLL_STEPS = 4  # rollouts of at most this many steps are unrolled (no while loop)
Policy = Callable[[PRNGKey, Array], tuple[Array, Array]]


def rollout(
    step_keys: PRNGKey,
    policy: Policy,
    env: Any,
    env_params: Any,
    env_state: envs.VecEnvState,
    obs: Array,
    env_action: Callable[[Array], Array] | None = None,
) -> tuple[envs.VecEnvState, Array, Transition]:
    """Run ``policy`` for T steps in ``N`` environments, one key per step.

    Args:
      step_keys: [T] keys; step t splits its key into the action's and the envs' keys.
      policy: ``policy(key, obs) -> (action, log_prob)`` on a batch of N observations.
      env: a gymnax environment.
      env_params: its parameters.
      env_state: the N environments' state (from :func:`rljax.envs.reset`).
      obs: the current observations, [N, *obs_shape].
      env_action: maps the policy's action to the one the environments receive (e.g. clipping
        to the action bounds); the transition stores the policy's own action, so its
        ``log_prob`` is that of the stored action. None: the identity.

    Returns:
      ``(env_state, obs, transitions)``: the state and observations after the last step, and a
      :class:`~rljax.types.Transition` with leading axes [T, N]. ``transitions.next_obs`` is the
      final observation at episode ends, so values of it give truncation-correct bootstraps.
    """

    step = _step_fn(policy, env, env_params, env_action)
    unroll = step_keys.shape[0] <= UNROLL_STEPS  # short rollouts (off-policy agents): unrolled
    (env_state, obs), traj = jax.lax.scan(step, (env_state, obs), step_keys, unroll=unroll)
    return env_state, obs, traj


def rollout_episodes(
    step_keys: PRNGKey,
    policy: Policy,
    env: Any,
    env_params: Any,
    env_state: envs.VecEnvState,
    obs: Array,
    env_action: Callable[[Array], Array] | None = None,
) -> Transition:
    """:func:`rollout` for at most T steps, stopping once every env has ended an episode.

    For one-episode-per-env collection (Monte-Carlo modes): step t is the same as
    :func:`rollout`'s up to the step where the last env's first episode ends; the steps after
    it are not simulated and hold zeros (``done`` False). Under ``vmap`` the loop runs until
    every batch member is done. Returns the [T, N] transitions.
    """
    step = _step_fn(policy, env, env_params, env_action)
    horizon = step_keys.shape[0]
    one = jax.eval_shape(lambda: step((env_state, obs), step_keys[0])[1])
    buf = jax.tree.map(lambda x: jnp.zeros((horizon, *x.shape), x.dtype), one)
    ended = jnp.zeros(obs.shape[:1], bool)
    # Step t takes key t. The loop reads the keys' raw data: each key is used at one step
    # only, which the key-reuse checker cannot see through a while loop's closure.
    raw, impl = jax.random.key_data(step_keys), jax.random.key_impl(step_keys)

    def cond(carry):
        t, _, _, _, ended = carry
        return (t < horizon) & ~ended.all()

    def body(carry):
        t, env_state, obs, buf, ended = carry
        key = jax.random.wrap_key_data(raw[t], impl=impl)
        (env_state, obs), tr = step((env_state, obs), key)
        buf = jax.tree.map(lambda b, x: jax.lax.dynamic_update_index_in_dim(b, x, t, 0), buf, tr)
        return t + 1, env_state, obs, buf, ended | tr.done

    t0 = jnp.zeros((), jnp.int32)
    *_, traj, _ = jax.lax.while_loop(cond, body, (t0, env_state, obs, buf, ended))
    return traj


def _step_fn(policy: Policy, env: Any, env_params: Any, env_action):
    """``step((env_state, obs), key) -> ((env_state, next_obs), transition)``: one step of
    ``policy`` in every env (the key split into the action's and the envs' keys)."""

    def step(carry, step_key):
        env_state, obs = carry
        act_key, env_key = jax.random.split(step_key)
        action, log_prob = policy(act_key, obs)
        to_env = action if env_action is None else env_action(action)
        next_obs, env_state, reward, terminated, truncated, info = envs.step(
            env_key, env, env_params, env_state, to_env
        )
        transition = Transition(
            obs=obs,
            action=action,
            log_prob=log_prob,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            next_obs=info["final_observation"],
            episode_return=info["episode_return"],
            episode_length=info["episode_length"],
        )
        return (env_state, next_obs), transition

    return step


def completed_episodes(traj: Transition) -> tuple[Array, Array]:
    """Sum and count of the returns of episodes completed in a trajectory (any leading axes)."""
    done = traj.done
    return jnp.sum(jnp.where(done, traj.episode_return, 0.0)), jnp.sum(done).astype(jnp.int32)


def first_episode_mask(done: Array) -> Array:
    """Mask of the steps of each env's first episode in a [T, N] (or [T]) rollout.

    True up to and including the first step where ``done`` is true, False after it.
    """
    done = done.astype(jnp.int32)
    ended_before = jnp.cumsum(done, axis=0) - done
    return ended_before == 0


def keep_first_episode(traj: Transition) -> Transition:
    """``traj`` with ``terminated``/``truncated`` kept only at each env's first episode end."""
    mask = first_episode_mask(traj.done)
    return traj._replace(terminated=traj.terminated & mask, truncated=traj.truncated & mask)
