"""Advantage actor-critic (A2C), in two return modes.

* ``monte_carlo``: the Keras "Actor Critic Method" tutorial. Each update plays one episode per
  environment (a fixed-length masked scan up to the time limit), standardises its Monte-Carlo
  returns over the episode's steps, and minimises −Σ log π(a|s)·sg(G − V) + Σ Huber(G − V)
  on a shared 128-unit trunk with Adam (lr 0.01), γ = 0.99 (``--preset keras``).
* ``gae``: n-step A2C (Mnih et al. 2016, https://arxiv.org/abs/1602.01783) with
  truncation-correct GAE, value and entropy coefficients and gradient clipping.

In both modes an episode cut by the time limit bootstraps from the value of its final
observation. In ``monte_carlo`` mode the critic fits the episode-standardised return G̃, whose
scale changes every episode, so its value of the final observation is mapped back to return
units with the episode's Monte-Carlo statistics: b = mean(G) + std(G)·V(s_final).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rljax import envs, losses, networks, returns
from rljax.agents import base, optim, presets, protocol
from rljax.rollout import first_episode_mask
from rljax.types import Array, Params, PRNGKey, Transition

S, L, POS = base.static, base.leaf, base.POSITIVE  # declarative config fields


@struct.dataclass
class A2CConfig(base.DiscreteStepsConfig):
    """A2C hyperparameters. Loop and shape fields are static; floats are leaves (sweepable)."""

    # 1M steps: with the learning rate annealed over it, the default experiment (CartPole-v1,
    # 64 seeds) solved 319 of 320 seeds over five seed sets; over 500k, 1-4 seeds per set of
    # 64 were not solved (BENCHMARKS.md).
    total_steps: int = S(1_000_000, POS)
    mode: str = S(
        "gae",
        base.one_of("gae", "monte_carlo"),
        help="gae: n-step GAE; monte_carlo: one episode per env, standardised returns (Keras)",
    )
    num_steps: int = S(8, POS, help="rollout length per env per update (gae mode)")
    shared_trunk: bool = S(False, base.BOOLEAN, help="actor and critic heads on one shared trunk")
    value_loss: str = S(
        "l2", base.one_of("l2", "huber"), help="critic loss: squared error (l2) or Huber"
    )
    reduction: str = S(
        "mean",
        base.one_of("mean", "sum"),
        help="losses averaged (mean) or summed (sum) over the batch",
    )
    normalize_advantages: bool = S(True, base.BOOLEAN)
    lr: float = L(1e-3, base.POSITIVE_FLOAT)
    gae_lambda: float = L(0.95, base.PROBABILITY)
    vf_coef: float = L(0.5, base.NON_NEGATIVE)
    ent_coef: float = L(0.0, base.NON_NEGATIVE)
    max_grad_norm: float = L(0.5, base.FINITE)
    adam_eps: float = L(1e-5, base.POSITIVE_FLOAT)

    agent_name = "a2c"  # not a field: the --agent name used in messages

    def steps_per_update(self, spec: envs.EnvSpec) -> int:
        """Env steps simulated per update (per seed)."""
        per_env = spec.max_steps if self.mode == "monte_carlo" else self.num_steps
        return self.num_envs * per_env


class A2CState(NamedTuple):
    params: Params
    opt_state: optax.OptState
    key: PRNGKey
    update: Array  # shape=(), dtype=int32
    env_steps: Array  # shape=(), dtype=int32


def _network(config: A2CConfig, spec: envs.EnvSpec):
    """``apply(params, obs) -> (logits, value)`` and ``init(key, obs)``."""
    sizes = (config.hidden_size, config.num_layers, config.activation)
    return base.actor_critic_network(spec, *sizes, shared_trunk=config.shared_trunk)


def _optimizer(config: A2CConfig, spec: envs.EnvSpec) -> optax.GradientTransformation:
    n = base.num_updates(config.total_steps, config.steps_per_update(spec))
    return optim.adam(
        config.lr, config.max_grad_norm, config.adam_eps, n if config.anneal_lr else None
    )


def init(key: PRNGKey, config: A2CConfig, spec: envs.EnvSpec) -> A2CState:
    """Fresh parameters and optimiser state for one run."""
    key, net_key = jax.random.split(key)
    params = _network(config, spec)[1](net_key, jnp.zeros(spec.obs_shape, jnp.float32))
    return A2CState(params, _optimizer(config, spec).init(params), key, **protocol.counters_init())


def _logits(config: A2CConfig, spec: envs.EnvSpec):
    apply, _ = _network(config, spec)
    return lambda params, obs: apply(params, obs)[0]


def make_act(config: A2CConfig, spec: envs.EnvSpec):
    """``act(key, params, obs[N], greedy) -> action[N]``: mode if greedy, else a sample."""
    return base.categorical_act(_logits(config, spec))


def make_policy(config: A2CConfig, spec: envs.EnvSpec, warmup: bool = False):
    """Behaviour policy ``policy(key, state, obs[N]) -> (action[N], log_prob[N])``."""
    del warmup
    logits = _logits(config, spec)
    return base.categorical_policy(lambda state, obs: logits(state.params, obs))


def collection(config: A2CConfig, spec: envs.EnvSpec) -> protocol.Collection:
    """``gae``: ``num_steps`` per env, episodes continuing; ``monte_carlo``: one episode."""
    if config.mode == "monte_carlo":
        return protocol.Collection(config.num_envs, spec.max_steps, episodic=True)
    return protocol.Collection(config.num_envs, config.num_steps)


def _mc_returns(config: A2CConfig, traj, v_next: Array, mask: Array) -> Array:
    """Episode-standardised Monte-Carlo returns [T, N], bootstrapped at truncation."""
    discount = config.gamma * (1.0 - traj.terminated.astype(jnp.float32))
    col = lambda f: jax.vmap(f, in_axes=1, out_axes=1)
    g_mc = col(returns.discounted_returns)(traj.reward, discount, jnp.zeros_like(v_next), traj.done)
    m = mask.astype(jnp.float32)
    n = jnp.maximum(m.sum(0), 1.0)
    mean = (g_mc * m).sum(0) / n
    std = jnp.sqrt((jnp.square(g_mc - mean) * m).sum(0) / n)
    bootstrap = mean + std * v_next  # the critic's value, in this episode's return units
    g = col(returns.discounted_returns)(traj.reward, discount, bootstrap, traj.done)
    return col(returns.standardize)(g, mask)


def learn_step(
    state: A2CState, traj: Transition, config: A2CConfig, spec: envs.EnvSpec, warmup=False
) -> tuple[A2CState, dict[str, Array]]:
    """One gradient step on a collected batch ``traj`` (leading axes [T, N]).

    In ``monte_carlo`` mode ``traj`` holds one episode per env from its reset:
    ``terminated``/``truncated`` are True only at the first episode end and steps after it are
    masked out.
    """
    del warmup
    apply, _ = _network(config, spec)
    monte_carlo = config.mode == "monte_carlo"
    ones = jnp.ones_like(traj.reward, dtype=bool)
    mask = first_episode_mask(traj.done) if monte_carlo else ones

    def loss_fn(params):
        logits, v = apply(params, traj.obs)
        _, v_next = apply(params, traj.next_obs)
        v_next = jax.lax.stop_gradient(v_next)
        dist = networks.categorical(logits)
        logp = dist.log_prob(traj.action)
        if monte_carlo:
            target = _mc_returns(config, traj, v_next, mask)
            adv = target - v
        else:
            discount = config.gamma * (1.0 - traj.terminated.astype(jnp.float32))
            adv = jax.vmap(returns.gae_advantages, in_axes=(1, 1, 1, 1, 1, None), out_axes=1)(
                traj.reward,
                discount,
                jax.lax.stop_gradient(v),
                v_next,
                traj.done,
                config.gae_lambda,
            )
            target = adv + jax.lax.stop_gradient(v)
            if config.normalize_advantages:
                adv = returns.standardize(adv)
        red = config.reduction
        actor = losses.policy_gradient_loss(logp, adv, mask, red)
        critic = losses.value_loss(v, target, mask, config.value_loss, red)
        entropy = losses.entropy_loss(dist.logits, mask, red)
        total = actor + config.vf_coef * critic + config.ent_coef * entropy
        return total, {"actor_loss": actor, "critic_loss": critic, "entropy": -entropy}

    grads, loss_info = jax.grad(loss_fn, has_aux=True)(state.params)
    opt = _optimizer(config, spec)
    params, opt_state = optim.optimizer_step(opt, grads, state.opt_state, state.params)
    metrics = {**loss_info, "grad_norm": optax.tree.norm(grads)}
    return state._replace(params=params, opt_state=opt_state), metrics


AGENT = protocol.define("a2c", A2CConfig, presets.A2C, globals())
