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

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rljax import envs, losses, networks, returns
from rljax.agents import common
from rljax.rollout import first_episode_mask
from rljax.types import Array, Params, PRNGKey, Transition

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The Keras tutorial's hyperparameters (seeds 000/001).
    "keras": dict(
        mode="monte_carlo",
        num_envs=1,
        hidden_size=128,
        num_layers=1,
        activation="relu",
        shared_trunk=True,
        value_loss="huber",
        reduction="sum",
        lr=0.01,
        gamma=0.99,
        vf_coef=1.0,
        ent_coef=0.0,
        max_grad_norm=0.0,
        adam_eps=1e-7,
        anneal_lr=False,
        total_steps=500_000,
    ),
}
PRESETS["monte_carlo"] = PRESETS["keras"]


@struct.dataclass
class A2CConfig:
    """A2C hyperparameters. Loop and shape fields are static; floats are leaves (sweepable)."""

    # Loop and shape (static).
    mode: str = struct.field(pytree_node=False, default="gae")  # "gae" or "monte_carlo"
    total_steps: int = struct.field(pytree_node=False, default=500_000)  # env steps per seed
    num_envs: int = struct.field(pytree_node=False, default=8)
    num_steps: int = struct.field(pytree_node=False, default=8)  # rollout length (gae mode)
    hidden_size: int = struct.field(pytree_node=False, default=64)
    num_layers: int = struct.field(pytree_node=False, default=2)
    activation: str = struct.field(pytree_node=False, default="tanh")
    shared_trunk: bool = struct.field(pytree_node=False, default=False)
    value_loss: str = struct.field(pytree_node=False, default="l2")  # "l2" or "huber"
    reduction: str = struct.field(pytree_node=False, default="mean")  # "mean" or "sum"
    normalize_advantages: bool = struct.field(pytree_node=False, default=True)
    anneal_lr: bool = struct.field(pytree_node=False, default=True)  # linear decay to 0
    # Float hyperparameters (leaves).
    lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5  # <= 0 turns clipping off
    adam_eps: float = 1e-5

    def validate(self, spec: envs.EnvSpec) -> None:
        """Raise :class:`~rljax.agents.common.ConfigError` naming the first bad field."""
        common.require_discrete(spec, "a2c")
        common.check_choice("mode", self.mode, ("gae", "monte_carlo"))
        for name in ("num_envs", "num_steps", "hidden_size", "num_layers"):
            common.check_positive_int(name, getattr(self, name))
        common.check_choice("activation", self.activation, tuple(networks.ACTIVATIONS))
        common.check_choice("value_loss", self.value_loss, ("l2", "huber"))
        common.check_choice("reduction", self.reduction, ("mean", "sum"))
        common.check_common(self.lr, self.gamma)
        common.check_float("gae_lambda", self.gae_lambda, 0.0, 1.0)
        common.check_float("vf_coef", self.vf_coef, 0.0)
        common.check_float("ent_coef", self.ent_coef, 0.0)
        common.check_float("max_grad_norm", self.max_grad_norm, -math.inf)
        common.check_float("adam_eps", self.adam_eps, 0.0, low_open=True)
        common.num_updates(self.total_steps, self.steps_per_update(spec))

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
    return common.actor_critic_network(spec, *sizes, shared_trunk=config.shared_trunk)


def _optimizer(config: A2CConfig, spec: envs.EnvSpec) -> optax.GradientTransformation:
    n = common.num_updates(config.total_steps, config.steps_per_update(spec))
    return common.adam(
        config.lr, config.max_grad_norm, config.adam_eps, n if config.anneal_lr else None
    )


def init(key: PRNGKey, config: A2CConfig, spec: envs.EnvSpec) -> A2CState:
    """Fresh parameters and optimiser state for one run."""
    key, net_key, _ = jax.random.split(key, 3)
    params = _network(config, spec)[1](net_key, jnp.zeros(spec.obs_shape, jnp.float32))
    return A2CState(params, _optimizer(config, spec).init(params), key, **common.counters_init())


def _logits(config: A2CConfig, spec: envs.EnvSpec):
    apply, _ = _network(config, spec)
    return lambda params, obs: apply(params, obs)[0]


def make_act(config: A2CConfig, spec: envs.EnvSpec):
    """``act(key, params, obs[N], greedy) -> action[N]``: mode if greedy, else a sample."""
    return common.categorical_act(_logits(config, spec))


def make_policy(config: A2CConfig, spec: envs.EnvSpec, warmup: bool = False):
    """Behaviour policy ``policy(key, state, obs[N]) -> (action[N], log_prob[N])``."""
    del warmup
    logits = _logits(config, spec)
    return common.categorical_policy(lambda state, obs: logits(state.params, obs))


def collection(config: A2CConfig, spec: envs.EnvSpec) -> common.Collection:
    """``gae``: ``num_steps`` per env, episodes continuing; ``monte_carlo``: one episode."""
    if config.mode == "monte_carlo":
        return common.Collection(config.num_envs, spec.max_steps, episodic=True)
    return common.Collection(config.num_envs, config.num_steps)


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
    params, opt_state = common.optimizer_step(opt, grads, state.opt_state, state.params)
    key = jax.random.split(state.key, 3)[0]
    metrics = {**loss_info, "grad_norm": optax.tree.norm(grads)}
    return state._replace(params=params, opt_state=opt_state, key=key), metrics


def _collect_keys(key: PRNGKey, config: A2CConfig, spec: envs.EnvSpec):
    return common.split_keys(key, 3, 2, collection(config, spec).num_steps)


AGENT = common.Agent(
    name="a2c",
    config=A2CConfig,
    presets=PRESETS,
    init=init,
    collection=collection,
    make_policy=make_policy,
    learn_step=learn_step,
    make_act=make_act,
    env_key=lambda key: jax.random.split(key, 3)[2],
    collect_keys=_collect_keys,
)
