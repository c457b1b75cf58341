"""Pieces every agent shares: networks and policy heads, the separate actor-critic pair.

Config fields and their checks live in :mod:`rljax.agents.fields`; their names are
re-exported here (``base.static``, ``base.POSITIVE``, ``base.ConfigError``, ...). The agent
protocol is :mod:`rljax.agents.protocol`; optimiser steps are :mod:`rljax.agents.optim`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import envs, networks
from rljax.agents.fields import (
    BOOLEAN,
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_FLOAT,
    PROBABILITY,
    Check,
    ConfigError,
    DiscountWarning,
    DiscreteStepsConfig,
    Normalization,
    RolloutConfig,
    check_choice,
    check_fields,
    check_float,
    check_positive_int,
    flag,
    interval,
    leaf,
    num_updates,
    one_of,
    require_continuous,
    require_discrete,
    static,
)
from rljax.agents.optim import adam, optimizer_steps
from rljax.types import Array


def actor_and_critic(
    spec: envs.EnvSpec, hidden_size: int, num_layers: int, activation: str
) -> tuple[networks.CategoricalPolicy, networks.ValueCritic]:
    """Separate categorical-policy and state-value MLPs of the same shape."""
    sizes = (hidden_size,) * num_layers
    return (
        networks.CategoricalPolicy(spec.num_actions, sizes, activation),
        networks.ValueCritic(sizes, activation),
    )


def actor_critic_network(
    spec: envs.EnvSpec,
    hidden_size: int,
    num_layers: int,
    activation: str,
    *,
    shared_trunk: bool = False,
    init_log_std: float = 0.0,
) -> tuple[Callable, Callable]:
    """An actor and a critic over one parameter tree: ``(apply, init)``.

    ``apply(params, obs) -> (policy_out, value)`` with ``policy_out`` the logits (discrete
    actions) or ``(mean, log_std)`` of a diagonal Gaussian (continuous actions), and
    ``init(key, obs) -> params``. Separate networks keep their parameters under ``"actor"``
    and ``"critic"``; ``shared_trunk`` (discrete only) is one
    :class:`~rljax.networks.SharedActorCritic`.
    """
    sizes = (hidden_size,) * num_layers
    if shared_trunk:
        if not spec.discrete:
            raise ValueError("shared_trunk supports discrete actions only")
        net = networks.SharedActorCritic(spec.num_actions, sizes, activation)
        return net.apply, net.init
    if spec.discrete:
        actor = networks.CategoricalPolicy(spec.num_actions, sizes, activation)
    else:
        actor = networks.GaussianPolicy(spec.num_actions, sizes, activation, init_log_std)
    critic = networks.ValueCritic(sizes, activation)

    def apply(params, obs):
        return actor.apply(params["actor"], obs), critic.apply(params["critic"], obs)

    def init(key, obs):
        k1, k2 = jax.random.split(key)
        return {"actor": actor.init(k1, obs), "critic": critic.init(k2, obs)}

    return apply, init


class SeparateActorCritic(NamedTuple):
    """Separate policy and value MLPs (``hidden_size`` x ``num_layers``, ``activation``), each
    with its own Adam (``lr`` and the config field ``critic_lr``; ``max_grad_norm``,
    ``adam_eps``, linear decay with ``anneal_lr``).

    ``params`` and ``opt_state`` are dicts keyed by ``names`` (policy first). Shared by
    REINFORCE-with-baseline and the one-step TD actor-critic, which differ only in their loss.
    """

    names: tuple[str, str]
    critic_lr: str  # the config field of the value network's learning rate

    def networks(self, config, spec):
        return actor_and_critic(spec, config.hidden_size, config.num_layers, config.activation)

    def optimizers(self, config, spec) -> dict[str, optax.GradientTransformation]:
        n = num_updates(config.total_steps, config.steps_per_update(spec))
        steps = n if config.anneal_lr else None
        lrs = (config.lr, getattr(config, self.critic_lr))
        return {
            name: adam(lr, config.max_grad_norm, config.adam_eps, steps)
            for name, lr in zip(self.names, lrs, strict=True)
        }

    def init(self, key, config, spec, with_critic: bool = True):
        """``(key, params, opt_state)``: ``key`` split into the next key and the two nets'."""
        key, pi_key, v_key = jax.random.split(key, 3)
        obs = jnp.zeros(spec.obs_shape, jnp.float32)
        actor, critic = self.networks(config, spec)
        pi, v = self.names
        params = {pi: actor.init(pi_key, obs), v: critic.init(v_key, obs) if with_critic else {}}
        opts = self.optimizers(config, spec)
        return key, params, {k: opts[k].init(x) for k, x in params.items()}

    def make_act(self, config, spec):
        """``act(key, policy_params, obs[N], greedy) -> action[N]``."""
        return categorical_act(self.networks(config, spec)[0].apply)

    def make_policy(self, config, spec, warmup: bool = False):
        """Behaviour policy ``policy(key, state, obs[N]) -> (action[N], log_prob[N])``."""
        del warmup
        logits, name = self.networks(config, spec)[0].apply, self.names[0]
        return categorical_policy(lambda state, obs: logits(state.params[name], obs))

    def step(self, loss_fn, state, traj, config, spec):
        """One step of each network on ``loss_fn(logits_fn, value_fn, params, traj, config) ->
        (loss, info)``: ``(params, opt_state, grads, info)``."""
        actor, critic = self.networks(config, spec)
        grads, info = jax.grad(loss_fn, argnums=2, has_aux=True)(
            actor.apply, critic.apply, state.params, traj, config
        )
        opts = self.optimizers(config, spec)
        params, opt_state = optimizer_steps(opts, grads, state.opt_state, state.params)
        return params, opt_state, grads, info

    def params_of(self, state):
        """The policy's parameters (what ``act`` takes)."""
        return state.params[self.names[0]]


def categorical_policy(logits_fn: Callable[[Any, Array], Array]):
    """Behaviour policy ``policy(key, state, obs) -> (action, log_prob)`` from
    ``logits_fn(state, obs)``."""

    def policy(key, state, obs):
        return networks.categorical(logits_fn(state, obs)).sample_and_log_prob(seed=key)

    return policy


def categorical_act(logits_fn: Callable[[Any, Array], Array]):
    """``act(key, params, obs, greedy) -> action``: the mode if greedy, else a sample."""

    def act(key, params, obs, greedy: bool):
        logits = logits_fn(params, obs)
        return jnp.argmax(logits, -1) if greedy else networks.categorical(logits).sample(seed=key)

    return act


def over_envs(fn: Callable) -> Callable:
    """Map a one-stream [T] function over the env axis of [T, N] arrays (axis 1 in and out)."""
    return jax.vmap(fn, in_axes=1, out_axes=1)


# The config names re-exported from rljax.agents.fields (base's own names are public too).
__all__ = [
    "ConfigError",
    "flag",
    "check_positive_int",
    "check_float",
    "check_choice",
    "Check",
    "BOOLEAN",
    "POSITIVE",
    "PROBABILITY",
    "NON_NEGATIVE",
    "POSITIVE_FLOAT",
    "FINITE",
    "interval",
    "one_of",
    "static",
    "leaf",
    "check_fields",
    "num_updates",
    "require_discrete",
    "require_continuous",
    "Normalization",
    "RolloutConfig",
    "DiscreteStepsConfig",
    "DiscountWarning",
]
