"""One-step (TD(0)) actor-critic, online: one update after every vectorised env step.

Each update takes ``num_steps`` (default 1) steps in each of ``num_envs`` environments and
then one gradient step on those transitions, with separate policy and value MLPs and one Adam
per network:

    δₜ = rₜ + γ(1 − terminatedₜ)·sg(V(s'ₜ)) − V(sₜ)      (s'ₜ: final observation at an end)
    L  = −mean_t log π(aₜ|sₜ)·sg(δₜ)  +  mean_t ½δₜ²  −  β·mean_t H(π(·|sₜ))

The actor term gives no gradient to the critic, and the TD target none to anything, so the
critic's step is the semi-gradient TD(0) update −δ·∇V(s). Only termination zeroes V(s');
at a time-limit truncation V(s') is the value of the final observation. With
``num_steps > 1`` every transition still gets its own one-step target (the policy is then
updated once per ``num_steps`` steps).

Seed 003 also logs an exponential moving average of completed-episode returns,
ema ← α·G + (1 − α)·ema with α = ``ema_alpha`` = 0.05, starting at 0 (the running-reward
smoothing of the Keras actor-critic example; a field, so another factor is one flag). It
is kept per run and reported as the metric ``ema_return``, next to the completed-episode
returns.

Reference: Sutton & Barto (2018), "Reinforcement Learning: An Introduction", ch. 13.5
(one-step actor-critic); Barto, Sutton & Anderson (1983).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rljax import envs, losses, networks, returns
from rljax.agents import base, presets, protocol
from rljax.types import Array, Params, PRNGKey, Transition

S, L, POS = base.static, base.leaf, base.POSITIVE  # declarative config fields


@struct.dataclass
class TDActorCriticConfig(base.DiscreteStepsConfig):
    """One-step actor-critic hyperparameters. Loop and shape fields static; floats leaves."""

    num_envs: int = S(16, POS)
    num_steps: int = S(1, POS)
    lr: float = L(3e-4, base.POSITIVE_FLOAT, help="actor learning rate")
    critic_lr: float = L(1e-3, base.POSITIVE_FLOAT)
    ent_coef: float = L(0.0, base.NON_NEGATIVE)
    max_grad_norm: float = L(1.0, base.FINITE)
    adam_eps: float = L(1e-8, base.POSITIVE_FLOAT)
    ema_alpha: float = L(
        0.05,
        base.PROBABILITY,
        help="smoothing of the logged ema_return metric (the tutorial's running reward)",
    )

    agent_name = "td_actor_critic"  # not a field: the --agent name used in messages


class TDActorCriticState(NamedTuple):
    params: dict[str, Params]  # {"actor": ..., "critic": ...}
    opt_state: dict[str, optax.OptState]  # one Adam per network
    ema_return: Array  # shape=(), dtype=float32; EMA of completed-episode returns
    key: PRNGKey
    update: Array  # shape=(), dtype=int32
    env_steps: Array  # shape=(), dtype=int32


def td_actor_critic_loss(logits_fn, value_fn, params: dict, traj, config: TDActorCriticConfig):
    """One-step actor-critic loss on a [T, N] batch (see the module docstring).

    Args:
      logits_fn: ``logits_fn(actor_params, obs[T, N, ...]) -> logits[T, N, A]``.
      value_fn: ``value_fn(critic_params, obs) -> v[T, N]``.
      params: ``{"actor": ..., "critic": ...}``.
      traj: a :class:`~rljax.types.Transition` with leading axes [T, N].
      config: supplies ``gamma`` and ``ent_coef``.

    Returns:
      ``(loss, info)`` with ``info["actor_loss"]``, ``info["critic_loss"]`` (½ mean δ²) and
      ``info["entropy"]``.
    """
    dist = networks.categorical(logits_fn(params["actor"], traj.obs))
    logp = dist.log_prob(traj.action)
    v_tm1 = value_fn(params["critic"], traj.obs)
    v_t = value_fn(params["critic"], traj.next_obs)
    discount = config.gamma * (1.0 - traj.terminated.astype(jnp.float32))
    delta = base.over_envs(returns.td_errors)(traj.reward, discount, v_tm1, v_t)
    target = jax.lax.stop_gradient(delta + v_tm1)
    actor = losses.policy_gradient_loss(logp, delta)
    critic = losses.value_loss(v_tm1, target)
    entropy = losses.entropy_loss(dist.logits)
    info = {"actor_loss": actor, "critic_loss": critic, "entropy": -entropy}
    return actor + critic + config.ent_coef * entropy, info


def ema_update(ema: Array, episode_return: Array, done: Array, alpha: Array | float) -> Array:
    """Fold the completed episodes of a [T, N] batch into an EMA, in the order they ended
    (:func:`rljax.envs.running_reward` with weight ``alpha``)."""
    return envs.running_reward(ema, episode_return, done, alpha)


NETS = base.SeparateActorCritic(("actor", "critic"), "critic_lr")
make_act, make_policy = NETS.make_act, NETS.make_policy


def init(key: PRNGKey, config: TDActorCriticConfig, spec: envs.EnvSpec):
    """Fresh parameters and optimiser states for one run."""
    key, params, opt_state = NETS.init(key, config, spec)
    ema = jnp.zeros((), jnp.float32)
    return TDActorCriticState(params, opt_state, ema, key, **protocol.counters_init())


def learn_step(
    state: TDActorCriticState,
    traj: Transition,
    config: TDActorCriticConfig,
    spec: envs.EnvSpec,
    warmup: bool = False,
) -> tuple[TDActorCriticState, dict[str, Array]]:
    """One gradient step on the ``num_steps`` transitions of every env [T, N]."""
    del warmup
    params, opt_state, _, info = NETS.step(td_actor_critic_loss, state, traj, config, spec)
    ema = ema_update(state.ema_return, traj.episode_return, traj.done, config.ema_alpha)
    new_state = state._replace(params=params, opt_state=opt_state, ema_return=ema)
    return new_state, {**info, "ema_return": ema}


AGENT = protocol.define(
    "td_actor_critic",
    TDActorCriticConfig,
    presets.TD_ACTOR_CRITIC,
    globals(),
    collection=protocol.steps_collection,
    params=NETS.params_of,
)
