"""REINFORCE (Williams 1992) with an optional learned state-value baseline.

Each update plays ``num_steps`` steps in each of ``num_envs`` environments (a batch of
``num_envs·num_steps`` env steps), computes per-env discounted returns with
:func:`rljax.returns.discounted_returns` and takes one step on each of two separate networks,
each with its own Adam:

    policy:   L_π = −mean_t log π(aₜ|sₜ)·Âₜ,   Âₜ = norm(Gₜ − V(sₜ))
    baseline: L_V = mean_t (Gₜ − V(sₜ))²      (the mean-squared error, i.e. 2·value_loss "l2")

with Gₜ = rₜ + γ(1 − terminatedₜ)·(Gₜ₊₁ if not doneₜ else V(s'ₜ)), where s'ₜ is the final
observation at an episode end. So termination zeroes the tail, and both a time-limit truncation
and the batch's cut bootstrap from the baseline's value of the last observation.

``--no-baseline`` is vanilla REINFORCE: no critic at all (no parameters, no bootstrap), so
Âₜ = norm(Gₜ) with Gₜ the Monte-Carlo return truncated at the batch cut and the time limit
(vₜ = 0). The truncation biases the last ~1/(1 − γ) steps of each env's final partial episode;
that is the honest price of having no value to bootstrap with. With ``normalize_advantages``
(on by default, as in seed 002) the batch mean of G acts as a constant baseline; turn it off
for the textbook estimator −mean log π·G.

Reference: Williams (1992), "Simple statistical gradient-following algorithms for
connectionist reinforcement learning"; Sutton & Barto (2018), ch. 13.4 (REINFORCE with
baseline).
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
class ReinforceConfig(base.DiscreteStepsConfig):
    """REINFORCE hyperparameters. Loop and shape fields are static; floats are leaves."""

    total_steps: int = S(1_000_000, POS)
    num_steps: int = S(250, POS, help="env steps per env per update (batch = num_envs x num_steps)")
    num_layers: int = S(1, POS)
    activation: str = S("relu", base.one_of(*networks.ACTIVATIONS))
    baseline: bool = S(True, base.BOOLEAN, help="learn a value baseline (off: vanilla REINFORCE)")
    normalize_advantages: bool = S(True, base.BOOLEAN)
    lr: float = L(1e-2, base.POSITIVE_FLOAT, help="policy learning rate")
    baseline_lr: float = L(3e-2, base.POSITIVE_FLOAT, help="baseline (value net) learning rate")
    max_grad_norm: float = L(0.0, base.FINITE)
    adam_eps: float = L(1e-8, base.POSITIVE_FLOAT)

    agent_name = "reinforce"  # not a field: the --agent name used in messages


class ReinforceState(NamedTuple):
    params: dict[str, Params]  # {"policy": ..., "baseline": ... ({} without a baseline)}
    opt_state: dict[str, optax.OptState]  # one Adam per network
    key: PRNGKey
    update: Array  # shape=(), dtype=int32
    env_steps: Array  # shape=(), dtype=int32


def reinforce_loss(logits_fn, value_fn, params: dict, traj, config: ReinforceConfig):
    """REINFORCE loss L_π + L_V on a [T, N] batch (see the module docstring).

    Args:
      logits_fn: ``logits_fn(policy_params, obs[T, N, ...]) -> logits[T, N, A]``.
      value_fn: ``value_fn(baseline_params, obs) -> v[T, N]`` (unused without a baseline).
      params: ``{"policy": ..., "baseline": ...}``.
      traj: a :class:`~rljax.types.Transition` with leading axes [T, N].
      config: supplies ``gamma``, ``baseline`` and ``normalize_advantages``.

    Returns:
      ``(loss, info)``; L_π gives no gradient to the baseline and L_V none to the policy.
    """
    logp = networks.categorical(logits_fn(params["policy"], traj.obs)).log_prob(traj.action)
    discount = config.gamma * (1.0 - traj.terminated.astype(jnp.float32))
    if config.baseline:
        v = value_fn(params["baseline"], traj.obs)
        v_next = value_fn(params["baseline"], traj.next_obs)
    else:
        v = v_next = jnp.zeros_like(traj.reward)
    g = base.over_envs(returns.discounted_returns)(traj.reward, discount, v_next, traj.done)
    adv = g - jax.lax.stop_gradient(v)
    if config.normalize_advantages:
        adv = returns.standardize(adv)
    policy = losses.policy_gradient_loss(logp, adv)
    baseline = 2.0 * losses.value_loss(v, g) if config.baseline else jnp.zeros(())
    info = {"policy_loss": policy, "baseline_loss": baseline, "return_mean": g.mean()}
    return policy + baseline, info


NETS = base.SeparateActorCritic(("policy", "baseline"), "baseline_lr")
make_act, make_policy = NETS.make_act, NETS.make_policy


def init(key: PRNGKey, config: ReinforceConfig, spec: envs.EnvSpec) -> ReinforceState:
    """Fresh parameters and optimiser states for one run (no baseline net without one)."""
    key, params, opt_state = NETS.init(key, config, spec, with_critic=config.baseline)
    return ReinforceState(params, opt_state, key, **protocol.counters_init())


def learn_step(
    state: ReinforceState,
    traj: Transition,
    config: ReinforceConfig,
    spec: envs.EnvSpec,
    warmup: bool = False,
) -> tuple[ReinforceState, dict[str, Array]]:
    """One step on each network from a batch of ``num_envs·num_steps`` env steps [T, N]."""
    del warmup
    params, opt_state, grads, info = NETS.step(reinforce_loss, state, traj, config, spec)
    metrics = {**info, "policy_grad_norm": optax.tree.norm(grads["policy"])}
    return state._replace(params=params, opt_state=opt_state), metrics


AGENT = protocol.define(
    "reinforce",
    ReinforceConfig,
    presets.REINFORCE,
    globals(),
    collection=protocol.steps_collection,
    params=NETS.params_of,
)
