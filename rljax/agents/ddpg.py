"""Deep deterministic policy gradient (DDPG) with a functional replay buffer and target networks.

Lillicrap et al. (2016), https://arxiv.org/abs/1509.02971. A deterministic actor μ_θ(s) (tanh
scaled to the action bounds) and a critic Q_φ(s, a), each with a target copy (θ', φ'):

* critic: minimise ½(y − Q_φ(s, a))² with y = r + γ·(1 − terminated)·Q_φ'(s', μ_θ'(s'));
  only termination zeroes the bootstrap, so Pendulum's time limit still bootstraps, from the
  true final observation s' (``info["final_observation"]``);
* actor: the deterministic policy gradient ∇_θ J = E[∇_a Q_φ(s, a)|_{a=μ_θ(s)} ∇_θ μ_θ(s)],
  via :func:`rljax.losses.dpg_loss` with ∂Q/∂a from ``jax.grad`` of the critic (as acme does);
* targets: θ' ← τθ + (1 − τ)θ' and φ' ← τφ + (1 − τ)φ', each from its OWN online network
  (:func:`rljax.agents.optim.soft_update`).

This module is the engine of the DDPG family: ``num_critics`` (an ensemble of critics with the
minimum target), ``target_noise``/``target_noise_clip`` (target policy smoothing) and
``policy_delay`` (actor and target updates every d critic updates) are TD3's three changes;
:mod:`rljax.agents.td3` sets them (Fujimoto et al. 2018, https://arxiv.org/abs/1802.09477).
With their DDPG defaults (1, 0, 1) the algorithm is plain DDPG.

One update collects ``policy_delay`` steps per env; :func:`learn_step` stores step j and
takes critic step j for each j, then one actor step and the soft target updates. The first
``warmup_updates(spec)`` updates act uniformly at random and only store: the runner runs them
as their own phase (``learn_step(..., warmup=True)``), so no gradient is computed and discarded.

Exploration: ``"gaussian"`` adds σ·h·N(0, 1) to μ(s) (h the action half-range) and clips to
the bounds. ``"epsilon_decay"`` is seed 004's scheme: the same Gaussian noise with a scale ε
that decays linearly from ``exploration_noise`` to ``final_exploration_noise`` over
``total_steps``.
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

S, L, POS = base.static, base.leaf, base.POSITIVE  # declarative config fields
Nets = networks.CriticEnsemble


@struct.dataclass
class DDPGConfig(off_policy.ReplayConfig):
    """DDPG hyperparameters: the replay fields, then DDPG's own. Loop and shape fields are
    static; floats are leaves (sweepable)."""

    exploration: str = S(
        "gaussian",
        base.one_of("gaussian", "epsilon_decay"),
        help="action noise: gaussian (fixed σ) or epsilon_decay (σ decays linearly)",
    )
    policy_delay: int = S(1, POS)
    lr: float = L(1e-3, base.POSITIVE_FLOAT, help="actor learning rate")
    critic_lr: float = L(1e-3, base.POSITIVE_FLOAT)
    gamma: float = L(0.99, base.PROBABILITY)
    tau: float = L(0.005, base.interval(0.0, 1.0, low_open=True))
    exploration_noise: float = L(
        0.1, base.NON_NEGATIVE, help="exploration σ, in action half-ranges"
    )
    final_exploration_noise: float = L(
        0.0, base.NON_NEGATIVE, help="σ at the end of training (epsilon_decay only)"
    )
    target_noise: float = L(0.0, base.NON_NEGATIVE)
    target_noise_clip: float = L(0.5, base.NON_NEGATIVE)

    agent_name = "ddpg"  # not a field: the --agent name used in messages
    steps_field = "policy_delay"  # one update collects policy_delay steps per env

    def validate(self, spec: envs.EnvSpec) -> None:
        """Raise :class:`~rljax.agents.base.ConfigError` naming the first bad field."""
        base.require_continuous(spec, self.agent_name)
        self.validate_replay(spec)


class DDPGState(NamedTuple):
    actor_params: Params
    critic_params: Params  # every leaf has a leading critic axis [num_critics, ...]
    target_actor_params: Params  # same structure as actor_params
    target_critic_params: Params  # same structure as critic_params
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    replay: replay.ReplayState
    key: PRNGKey
    update: Array  # shape=(), dtype=int32; updates done
    env_steps: Array  # shape=(), dtype=int32
    obs_stats: Any = None  # set during learning with normalize_obs (rljax.agents.normalize)


def make_networks(config: DDPGConfig, spec: envs.EnvSpec) -> Nets:
    """The actor and ``num_critics`` critics (:class:`rljax.networks.CriticEnsemble`)."""
    sizes = config.hidden_sizes()
    actor = networks.DeterministicActor(
        spec.num_actions, spec.action_low, spec.action_high, sizes, config.activation
    )
    return networks.critic_ensemble(
        actor, networks.QCritic(sizes, config.activation), config.num_critics
    )


def exploration_scale(config: DDPGConfig, env_steps: Array) -> Array:
    """σ of the behaviour noise: constant, or decaying linearly ("epsilon_decay", seed 004)."""
    if config.exploration == "gaussian":
        return jnp.asarray(config.exploration_noise, jnp.float32)
    frac = jnp.minimum(env_steps / config.total_steps, 1.0)
    return config.exploration_noise + frac * (
        config.final_exploration_noise - config.exploration_noise
    )


def td_target(key: PRNGKey, config: DDPGConfig, nets: Nets, spec, state: DDPGState, batch):
    """y = r + γ(1 − terminated)·min_k Q'_k(s', ã'), ã' = μ'(s') plus clipped smoothing noise."""
    mu_next = nets.actor(state.target_actor_params, batch.next_obs)
    a_next = off_policy.noisy_action(
        key, mu_next, config.target_noise, config.target_noise_clip, spec
    )
    q_next = jnp.min(nets.critic(state.target_critic_params, batch.next_obs, a_next), axis=0)
    return off_policy.critic_target(
        batch.reward, off_policy.discount(config.gamma, batch.terminated), q_next
    )


def actor_loss(actor_params: Params, critic_params: Params, nets: Nets, obs: Array) -> Array:
    """DPG loss on the first critic: ∇_θ = −mean_B ∂Q_1(s, a)/∂a|_{a=μ(s)}·∂μ_θ(s)/∂θ."""
    a_t = nets.actor(actor_params, obs)
    q1 = jax.tree.map(lambda x: x[0], critic_params)
    dqda_t = jax.vmap(jax.grad(nets.critic_one, argnums=2), in_axes=(None, 0, 0))(
        q1, obs, jax.lax.stop_gradient(a_t)
    )
    return losses.dpg_loss(a_t, dqda_t)


def update_targets(state: DDPGState, tau: Array | float) -> DDPGState:
    """Soft-update each target from its own online network (actor→actor, critic→critic)."""
    s = state
    return s._replace(
        target_actor_params=optim.soft_update(s.actor_params, s.target_actor_params, tau),
        target_critic_params=optim.soft_update(s.critic_params, s.target_critic_params, tau),
    )


def _optimizers(config: DDPGConfig) -> tuple[optax.GradientTransformation, ...]:
    return optax.adam(config.lr), optax.adam(config.critic_lr)


def init(key: PRNGKey, config: DDPGConfig, spec: envs.EnvSpec) -> DDPGState:
    """Fresh networks (targets equal to their online copies), optimisers and an empty replay."""
    key, actor_params, critic_params = off_policy.init_networks(
        key, make_networks(config, spec), spec
    )
    actor_opt, critic_opt = _optimizers(config)
    return DDPGState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_actor_params=actor_params,
        target_critic_params=critic_params,
        actor_opt_state=actor_opt.init(actor_params),
        critic_opt_state=critic_opt.init(critic_params),
        replay=off_policy.init_replay(config, spec),
        key=key,
        **protocol.counters_init(),
    )


def make_act(config: DDPGConfig, spec: envs.EnvSpec):
    """``act(key, actor_params, obs[N], greedy) -> action[N]``: μ(s), or with σ noise."""
    nets = make_networks(config, spec)

    def act(key, params, obs, greedy: bool):
        mu = nets.actor(params, obs)
        if greedy:
            return mu
        return off_policy.noisy_action(key, mu, config.exploration_noise, jnp.inf, spec)

    return act


def make_policy(config: DDPGConfig, spec: envs.EnvSpec, warmup: bool = False):
    """``policy(key, state, obs[N]) -> (action[N, A], zeros[N])``: the behaviour policy.

    Warm-up: uniform in the bounds. Then μ(s) + σ·h·N(0, 1), clipped, with σ from
    :func:`exploration_scale` at the update's first env step (an update acts its
    ``policy_delay`` steps with one σ).
    """
    actor = make_networks(config, spec).actor

    def policy(key, state: DDPGState, obs):
        sigma = exploration_scale(config, state.env_steps)
        a = off_policy.noisy_action(key, actor(state.actor_params, obs), sigma, jnp.inf, spec)
        return a, jnp.zeros(obs.shape[:1])

    return off_policy.behaviour(policy, spec, warmup)


def split_update_key(key: PRNGKey, config: DDPGConfig):
    """``(next_key, sample_keys, noise_keys)``, ``policy_delay`` keys each."""
    key, *keys = jax.random.split(key, 2 * config.policy_delay + 1)
    return key, keys[0::2], keys[1::2]


def learn_step(
    state: DDPGState, traj: Transition, config: DDPGConfig, spec: envs.EnvSpec, warmup=False
) -> tuple[DDPGState, dict[str, Array]]:
    """Store step ``j`` of ``traj`` [policy_delay, N] and take critic step ``j``, for each ``j``
    in order; then one actor step and the target updates. During the warm-up the steps are
    only stored. ``traj.next_obs`` is the final observation at episode ends."""
    chex.assert_shape(traj.reward, (config.policy_delay, config.num_envs))
    nets = make_networks(config, spec)
    buffer = off_policy.buffer(config)
    actor_opt, critic_opt = _optimizers(config)
    key, sample_keys, noise_keys = split_update_key(state.key, config)
    s = state._replace(key=key)
    closs, qs = [], []
    for j in range(config.policy_delay):
        s = s._replace(replay=buffer.add(s.replay, off_policy.experience(traj, j)))
        if not warmup:
            batch = off_policy.sample(sample_keys[j], config, s)
            y = td_target(noise_keys[j], config, nets, spec, s, batch)
            s, loss, q = off_policy.critic_step(s, critic_opt, nets, spec, batch, y)
            closs.append(loss)
            qs.append(jnp.mean(q))
    if warmup:
        return s, off_policy.zero_metrics("critic_loss", "actor_loss", "q_mean")
    actor_params, actor_opt_state, aloss, _ = optim.descend(
        actor_opt, actor_loss, s.actor_params, s.actor_opt_state, s.critic_params, nets,
        batch.obs, has_aux=False,
    )  # fmt: skip
    s = update_targets(
        s._replace(actor_params=actor_params, actor_opt_state=actor_opt_state), config.tau
    )
    metrics = {
        "critic_loss": jnp.mean(jnp.stack(closs)),
        "actor_loss": aloss,
        "q_mean": jnp.mean(jnp.stack(qs)),
    }
    return s, metrics


AGENT = off_policy.define("ddpg", DDPGConfig, presets.DDPG, globals())
