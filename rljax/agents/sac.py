"""Soft actor-critic (SAC), continuous and discrete actions, with automatic temperature.

Haarnoja et al. (2018), https://arxiv.org/abs/1801.01290 and https://arxiv.org/abs/1812.05905;
discrete actions: Christodoulou (2019), https://arxiv.org/abs/1910.07207. The policy π_θ
maximises return plus α times its entropy:

* critics: ``num_critics`` critics Q_φk (two by default) each regress ½(y − Q_φk(s, a))² on
  y = r + γ(1 − terminated)·(min_k Q_φ'k(s', a') − α·log π(a'|s')), a' ~ π(·|s')
  (:func:`rljax.losses.soft_q_target`); discrete actions take the expectation over a' exactly
  (:func:`rljax.losses.soft_q_target_discrete`);
* actor: continuous actions minimise E[α·log π(a|s) − min_k Q_φk(s, a)] with a reparameterised
  tanh-squashed Gaussian sample scaled to the bounds (:func:`rljax.losses.sac_actor_loss`);
  discrete actions the exact sum over actions (:func:`rljax.losses.sac_actor_loss_discrete`);
* temperature: log α descends −log α·sg(log π + H̄) (:func:`rljax.losses.temperature_loss`)
  towards the target entropy H̄ = −ratio·|A| (continuous) or ratio·log|A| (discrete);
  ``autotune=False`` keeps α fixed at ``alpha``;
* targets: φ'k ← τφk + (1 − τ)φ'k after every gradient step.

One update stores ``num_envs × num_steps`` env steps, then takes ``gradient_steps`` gradient
steps (the update-to-data ratio is ``gradient_steps / (num_envs·num_steps)``), each on a fresh
batch: critics, then the actor on the updated critics, then α, then the targets. The first
``learning_starts`` steps act uniformly at random (:mod:`rljax.agents.off_policy`). Greedy
evaluation plays the squashed mean (continuous) or the most probable action (discrete).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from rljax import envs, losses, networks, replay
from rljax.agents import base, off_policy, optim, presets, protocol
from rljax.types import Array, Params, PRNGKey, Transition

S, L, POS = base.static, base.leaf, base.POSITIVE
Nets = networks.CriticEnsemble
METRICS = ("critic_loss", "actor_loss", "alpha", "entropy", "q_mean")


@struct.dataclass
class SACConfig(off_policy.ReplayConfig):
    """SAC hyperparameters: the replay fields, then SAC's own."""

    batch_size: int = S(256, POS)
    num_critics: int = S(2, POS)
    num_steps: int = S(1, POS, help="env steps per env per update")
    gradient_steps: int = S(1, POS, help="gradient steps per update (the update-to-data ratio)")
    autotune: bool = S(True, base.BOOLEAN, help="learn the temperature α (off: α stays --alpha)")
    lr: float = L(3e-3, base.POSITIVE_FLOAT, help="actor learning rate")
    critic_lr: float = L(3e-3, base.POSITIVE_FLOAT)
    alpha_lr: float = L(3e-3, base.POSITIVE_FLOAT, help="temperature learning rate")
    gamma: float = L(0.99, base.PROBABILITY)
    tau: float = L(0.02, base.interval(0.0, 1.0, low_open=True))
    alpha: float = L(1.0, base.POSITIVE_FLOAT, help="initial α (autotune) or the fixed α")
    target_entropy_ratio: float = L(
        1.0, base.NON_NEGATIVE, help="target entropy H̄ = −ratio·|A| (Box), ratio·log|A| (Discrete)"
    )

    agent_name = "sac"  # not a field: the --agent name used in messages

    def validate(self, spec: envs.EnvSpec) -> None:
        """Raise :class:`~rljax.agents.base.ConfigError` naming the first bad field."""
        self.validate_replay(spec)
        if spec.discrete and self.target_entropy_ratio > 1.0:
            raise base.ConfigError(
                "--target-entropy-ratio must be in [0, 1] for discrete actions (a fraction "
                f"of the maximum entropy log|A|), got {self.target_entropy_ratio!r}"
            )

    def target_entropy(self, spec: envs.EnvSpec) -> Array | float:
        """H̄: −ratio·|A| for continuous actions, ratio·log|A| for discrete ones."""
        if spec.discrete:
            return self.target_entropy_ratio * jnp.log(float(spec.num_actions))
        return -self.target_entropy_ratio * spec.num_actions


class SACState(NamedTuple):
    actor_params: Params
    critic_params: Params  # every leaf has a leading critic axis [num_critics, ...]
    target_critic_params: Params  # same structure as critic_params
    log_alpha: Array  # [] float32
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    replay: replay.ReplayState
    key: PRNGKey
    update: Array  # shape=(), dtype=int32; updates done
    env_steps: Array  # shape=(), dtype=int32
    obs_stats: Any = None  # set during learning with normalize_obs (rljax.agents.normalize)


def make_networks(config: SACConfig, spec: envs.EnvSpec) -> Nets:
    """The actor (squashed-Gaussian parameters, or logits) and ``num_critics`` critics
    (Q(s, a), or Q(s, ·) for discrete actions)."""
    sizes, act = config.hidden_sizes(), config.activation
    if spec.discrete:
        actor = networks.CategoricalPolicy(spec.num_actions, sizes, act)
        critic = networks.QValues(spec.num_actions, sizes, act)
    else:
        actor = networks.SquashedGaussianActor(spec.num_actions, sizes, act)
        critic = networks.QCritic(sizes, act)
    return networks.critic_ensemble(actor, critic, config.num_critics)


def _optimizers(config: SACConfig) -> tuple[optax.GradientTransformation, ...]:
    return optax.adam(config.lr), optax.adam(config.critic_lr), optax.adam(config.alpha_lr)


def sample(key: PRNGKey, nets: Nets, params: Params, obs: Array, spec: envs.EnvSpec):
    """``(action, log_prob)`` from the continuous policy, reparameterised."""
    mean, log_std = nets.actor(params, obs)
    return networks.tanh_gaussian_sample(key, mean, log_std, spec.action_low, spec.action_high)


def alpha_of(state: SACState, config: SACConfig) -> Array:
    """The temperature in use: exp(log α) when learned, else the fixed ``alpha``."""
    return jnp.exp(state.log_alpha) if config.autotune else jnp.asarray(config.alpha)


def td_target(key, config, nets, spec, state: SACState, batch, alpha) -> Array:
    """The soft target y [B] from the target critics, with a' from the current policy."""
    disc = off_policy.discount(config.gamma, batch.terminated)
    if spec.discrete:
        logits = nets.actor(state.actor_params, batch.next_obs)
        q_next = nets.critic(state.target_critic_params, batch.next_obs)
        return losses.soft_q_target_discrete(batch.reward, disc, q_next, logits, alpha)
    a_next, logp_next = sample(key, nets, state.actor_params, batch.next_obs, spec)
    q_next = nets.critic(state.target_critic_params, batch.next_obs, a_next)
    return losses.soft_q_target(batch.reward, disc, q_next, logp_next, alpha)


def actor_loss(actor_params, critic_params, key, nets, spec, obs, alpha):
    """The actor loss with the critics fixed, and log π(a|s) [B] of the actions it scored
    (discrete: Σ_a π(a|s)·log π(a|s), minus the entropy)."""
    if spec.discrete:
        logits = nets.actor(actor_params, obs)
        logp = jnp.sum(jax.nn.softmax(logits) * jax.nn.log_softmax(logits), axis=-1)
        q = nets.critic(critic_params, obs)
        return losses.sac_actor_loss_discrete(logits, q, alpha), logp
    action, logp = sample(key, nets, actor_params, obs, spec)
    return losses.sac_actor_loss(logp, nets.critic(critic_params, obs, action), alpha), logp


def init(key: PRNGKey, config: SACConfig, spec: envs.EnvSpec) -> SACState:
    """Fresh networks (target critics equal to the critics), log α = log ``alpha``, optimisers
    and an empty replay."""
    key, actor_params, critic_params = off_policy.init_networks(
        key, make_networks(config, spec), spec
    )
    log_alpha = jnp.log(jnp.asarray(config.alpha, jnp.float32))
    actor_opt, critic_opt, alpha_opt = _optimizers(config)
    return SACState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=critic_params,
        log_alpha=log_alpha,
        actor_opt_state=actor_opt.init(actor_params),
        critic_opt_state=critic_opt.init(critic_params),
        alpha_opt_state=alpha_opt.init(log_alpha),
        replay=off_policy.init_replay(config, spec),
        key=key,
        **protocol.counters_init(),
    )


def make_act(config: SACConfig, spec: envs.EnvSpec):
    """``act(key, actor_params, obs[N], greedy) -> action[N]``: the squashed mean or the
    argmax when greedy, else a sample."""
    nets = make_networks(config, spec)
    if spec.discrete:
        return base.categorical_act(nets.actor)

    def act(key, params, obs, greedy: bool):
        if greedy:
            mean, _ = nets.actor(params, obs)
            return networks.tanh_gaussian_mode(mean, spec.action_low, spec.action_high)
        return sample(key, nets, params, obs, spec)[0]

    return act


def make_policy(config: SACConfig, spec: envs.EnvSpec, warmup: bool = False):
    """``policy(key, state, obs[N]) -> (action[N], log_prob[N])``: uniform during the
    warm-up, then a sample of π (log-probs are zeros in the warm-up)."""
    nets = make_networks(config, spec)

    def policy(key, state: SACState, obs):
        if spec.discrete:
            dist = networks.categorical(nets.actor(state.actor_params, obs))
            return dist.sample_and_log_prob(seed=key)
        return sample(key, nets, state.actor_params, obs, spec)

    return off_policy.behaviour(policy, spec, warmup)


def gradient_step(state: SACState, key: PRNGKey, config: SACConfig, spec: envs.EnvSpec):
    """One batch: critic step, actor step (on the new critics), α step, target update."""
    nets = make_networks(config, spec)
    actor_opt, critic_opt, alpha_opt = _optimizers(config)
    sample_key, target_key, actor_key = jax.random.split(key, 3)
    batch = off_policy.sample(sample_key, config, state)
    alpha = alpha_of(state, config)
    y = td_target(target_key, config, nets, spec, state, batch, alpha)
    state, closs, q = off_policy.critic_step(state, critic_opt, nets, spec, batch, y)
    actor_params, actor_opt_state, aloss, logp = optim.descend(
        actor_opt, actor_loss, state.actor_params, state.actor_opt_state, state.critic_params,
        actor_key, nets, spec, batch.obs, alpha,
    )  # fmt: skip
    log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt_state
    if config.autotune:
        log_alpha, alpha_opt_state, _, _ = optim.descend(
            alpha_opt, losses.temperature_loss, log_alpha, alpha_opt_state, logp,
            config.target_entropy(spec), has_aux=False,
        )  # fmt: skip
    targets = optim.soft_update(state.critic_params, state.target_critic_params, config.tau)
    state = state._replace(
        actor_params=actor_params,
        target_critic_params=targets,
        log_alpha=log_alpha,
        actor_opt_state=actor_opt_state,
        alpha_opt_state=alpha_opt_state,
    )
    metrics = (closs, aloss, alpha, -jnp.mean(logp), jnp.mean(q))
    return state, dict(zip(METRICS, metrics, strict=True))


def learn_step(
    state: SACState, traj: Transition, config: SACConfig, spec: envs.EnvSpec, warmup=False
) -> tuple[SACState, dict[str, Array]]:
    """Store ``traj`` [num_steps, num_envs] (in time order), then ``gradient_steps`` gradient
    steps; during the warm-up only store. ``traj.next_obs`` is the final observation at
    episode ends."""
    chex.assert_shape(traj.reward, (config.num_steps, config.num_envs))
    buffer = off_policy.buffer(config)
    state = state._replace(replay=buffer.add(state.replay, off_policy.experience(traj)))
    if warmup:
        return state, off_policy.zero_metrics(*METRICS)
    key, *keys = jax.random.split(state.key, config.gradient_steps + 1)
    state = state._replace(key=key)
    step = lambda s, k: gradient_step(s, k, config, spec)  # noqa: E731
    return off_policy.repeat(step, state, jnp.stack(keys))


AGENT = off_policy.define("sac", SACConfig, presets.SAC, globals())
