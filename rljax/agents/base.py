"""Pieces every agent shares: the protocol, optimisers, policy heads, episode metrics.

Config fields and their checks live in :mod:`rljax.agents.fields`; their names are
re-exported here (``base.static``, ``base.POSITIVE``, ``base.ConfigError``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
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
from rljax.types import Array, EpisodeWindow, PRNGKey, Transition


def adam(
    lr: Array | float,
    max_grad_norm: Array | float,
    eps: Array | float = 1e-8,
    anneal_steps: int | None = None,
) -> optax.GradientTransformation:
    """Adam with optional global-norm clipping (``max_grad_norm`` <= 0 turns it off).

    With ``anneal_steps`` the learning rate decays linearly from ``lr`` to 0 over that many
    optimiser steps.
    """
    clip = optax.clip_by_global_norm(jnp.where(max_grad_norm > 0, max_grad_norm, jnp.inf))
    if anneal_steps is not None:
        lr = optax.linear_schedule(lr, 0.0, anneal_steps)
    return optax.chain(clip, optax.adam(lr, eps=eps))


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


def optimizer_steps(
    optimizers: dict[str, optax.GradientTransformation], grads: dict, opt_state: dict, params: dict
) -> tuple[dict, dict]:
    """:func:`optimizer_step` of each named network with its own optimiser:
    ``({name: params}, {name: opt_state})``."""
    new = {k: optimizer_step(optimizers[k], grads[k], opt_state[k], params[k]) for k in params}
    return {k: p for k, (p, _) in new.items()}, {k: o for k, (_, o) in new.items()}


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


def optimizer_step(
    optimizer: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any
) -> tuple[Any, Any]:
    """One optimiser step: ``(new_params, new_opt_state)``."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def descend(optimizer: optax.GradientTransformation, loss_fn: Callable, params, opt_state, *args,
            has_aux: bool = True):  # fmt: skip
    """One optimiser step down ``loss_fn(params, *args)`` (returning ``(loss, aux)``, or the
    loss alone with ``has_aux=False``): ``(params, opt_state, loss, aux)``."""
    value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(params, *args)
    loss, aux = value if has_aux else (value, None)
    params, opt_state = optimizer_step(optimizer, grads, opt_state, params)
    return params, opt_state, loss, aux


def minibatch_indices(
    key: PRNGKey, num_epochs: int, batch_size: int, num_minibatches: int
) -> Array:
    """One fresh permutation of ``range(batch_size)`` per epoch, split: [E, M, B/M] int32."""
    perms = jax.vmap(jax.random.permutation, (0, None))(
        jax.random.split(key, num_epochs), batch_size
    )
    return perms.reshape(num_epochs, num_minibatches, batch_size // num_minibatches)


def minibatch_epochs(
    key: PRNGKey, step: Callable, carry: Any, batch: Any, num_epochs: int, num_minibatches: int
) -> tuple[Any, Any]:
    """``num_epochs`` passes of ``step(carry, minibatch) -> (carry, info)`` over ``batch``
    (leaves with leading axis [B]), each in a fresh random order split into
    ``num_minibatches`` minibatches: ``(carry, info[E, M])``.

    One gather per epoch puts the batch in that epoch's order, split [M, B/M]; the inner scan
    then slices minibatches off it (cheaper than a gather per minibatch under ``vmap``).
    """
    size = jax.tree.leaves(batch)[0].shape[0]
    idx = minibatch_indices(key, num_epochs, size, num_minibatches)

    def epoch(carry, epoch_idx):
        flat = epoch_idx.reshape(-1)
        split = jax.tree.map(lambda x: x[flat].reshape(*epoch_idx.shape, *x.shape[1:]), batch)
        return jax.lax.scan(step, carry, split)

    return jax.lax.scan(epoch, carry, idx)


def episode_metrics(
    window: EpisodeWindow, traj: Transition, threshold: float | None
) -> tuple[EpisodeWindow, dict[str, Array]]:
    """Update the solved window with a trajectory's completed episodes; return their metrics.

    ``traj`` has leading axes [T, N]; episodes are appended in the order they ended.
    """
    done = traj.done
    window = envs.episode_window_update(window, traj.episode_return, done, threshold)
    metrics = {
        "episode_return_sum": jnp.sum(jnp.where(done, traj.episode_return, 0.0)),
        "episode_count": jnp.sum(done).astype(jnp.int32),
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


def soft_update(online: Any, target: Any, tau: Array | float) -> Any:
    """Polyak averaging of ONE network's target: ``tau·online + (1 − tau)·target``.

    Called once per (online, target) pair; the two trees must have the same structure.
    """
    chex.assert_trees_all_equal_shapes_and_dtypes(online, target)
    return optax.incremental_update(new_tensors=online, old_tensors=target, step_size=tau)


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
