"""Proximal policy optimisation (PPO) with the clipped surrogate objective.

Each update plays ``num_steps`` steps in each of ``num_envs`` environments, computes
truncation-correct GAE advantages Âₜ (:func:`rljax.returns.gae_advantages` with
δₜ = c·rₜ + γ(1 − terminatedₜ)·V_old(s'ₜ) − V_old(sₜ), s'ₜ the final observation at an episode
end, c = ``reward_scale``) and value targets Gₜ = Âₜ + V_old(sₜ), then takes
``num_epochs`` passes over the batch, each in a fresh random order split into
``num_minibatches`` minibatches, one clipped-gradient Adam step per minibatch, on

    L = −mean min(ρₜÂₜ, clip(ρₜ, 1 ± ε)Âₜ) + c_v·L_V − c_H·mean H(π(·|sₜ)),
    ρₜ = π(aₜ|sₜ) / π_old(aₜ|sₜ),

with L_V = ½·mean max((V − G)², (V_old + clip(V − V_old, ±ε) − G)²) (``clip_value_loss``) or
½·mean (V − G)², and Âₜ standardised per minibatch (``normalize_advantages``). The learning
rate decays linearly to 0 over all minibatch steps (``anneal_lr``).

Continuous actions use a diagonal Gaussian with a state-independent log-std. The environment
receives the sample clipped to the action bounds, but the transition stores the raw sample and
its log-probability, so ρₜ compares both policies on the same sample.

References: Schulman et al. (2017), "Proximal Policy Optimization Algorithms",
https://arxiv.org/abs/1707.06347; Huang et al. (2022), "The 37 Implementation Details of
Proximal Policy Optimization", ICLR Blog Track.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rljax import envs, losses, networks, returns
from rljax.agents import base, optim, presets, protocol
from rljax.types import Array, Params, PRNGKey, Transition

S, L, POS = base.static, base.leaf, base.POSITIVE  # declarative config fields


@struct.dataclass
class PPOConfig(base.RolloutConfig):
    """PPO hyperparameters. Loop and shape fields are static; floats are leaves (sweepable)."""

    num_envs: int = S(4, POS)
    num_steps: int = S(128, POS, help="rollout length per env per update")
    num_epochs: int = S(4, POS, help="passes over each batch")
    num_minibatches: int = S(
        4, POS, help="minibatches per epoch (must divide num_envs x num_steps)"
    )
    normalize_advantages: bool = S(True, base.BOOLEAN, help="standardise advantages per minibatch")
    clip_value_loss: bool = S(
        True, base.BOOLEAN, help="clip the value update like the policy ratio"
    )
    lr: float = L(2.5e-4, base.POSITIVE_FLOAT)
    gae_lambda: float = L(0.95, base.PROBABILITY)
    clip_eps: float = L(
        0.2, base.POSITIVE_FLOAT, help="clipping ε of the probability ratio (and of the value)"
    )
    ent_coef: float = L(0.01, base.NON_NEGATIVE)
    vf_coef: float = L(0.5, base.NON_NEGATIVE)
    max_grad_norm: float = L(0.5, base.FINITE)
    adam_eps: float = L(1e-5, base.POSITIVE_FLOAT)
    init_log_std: float = L(
        0.0,
        base.interval(-20.0, 2.0),
        help="continuous actions: initial log σ of the Gaussian policy",
    )
    reward_scale: float = L(
        1.0, base.POSITIVE_FLOAT, help="learning sees reward_scale x r (the logs see r)"
    )

    def validate(self, spec: envs.EnvSpec) -> None:
        """Raise :class:`~rljax.agents.base.ConfigError` naming the first bad field."""
        base.check_fields(self, spec)
        batch = self.num_envs * self.num_steps
        if batch % self.num_minibatches:
            raise base.ConfigError(
                f"--num-minibatches {self.num_minibatches} must divide the batch "
                f"--num-envs x --num-steps = {batch}"
            )
        if batch // self.num_minibatches < 2:
            raise base.ConfigError(
                f"--num-minibatches {self.num_minibatches} leaves one sample per minibatch "
                f"(--num-envs x --num-steps = {batch}); use at most {batch // 2}"
            )
        base.num_updates(self.total_steps, self.steps_per_update(spec))


class PPOState(NamedTuple):
    params: Params  # {"actor": ..., "critic": ...}
    opt_state: optax.OptState
    key: PRNGKey
    update: Array  # shape=(), dtype=int32
    env_steps: Array  # shape=(), dtype=int32


class PPOBatch(NamedTuple):
    """Flattened experience, leading axis [B] (or [M, B/M] once split into minibatches)."""

    obs: Array
    action: Array  # the raw (unclipped) sample for continuous actions
    log_prob: Array  # log π_old(action|obs)
    value: Array  # V_old(obs)
    advantage: Array
    target: Array  # advantage + value


def _network(config: PPOConfig, spec: envs.EnvSpec):
    sizes = (config.hidden_size, config.num_layers, config.activation)
    return base.actor_critic_network(spec, *sizes, init_log_std=config.init_log_std)


def optimizer(config: PPOConfig, spec: envs.EnvSpec) -> optax.GradientTransformation:
    """Adam with global-norm clipping; annealed to 0 over every minibatch step of the run."""
    n = base.num_updates(config.total_steps, config.steps_per_update(spec))
    steps = n * config.num_epochs * config.num_minibatches
    return optim.adam(
        config.lr, config.max_grad_norm, config.adam_eps, steps if config.anneal_lr else None
    )


def init(key: PRNGKey, config: PPOConfig, spec: envs.EnvSpec) -> PPOState:
    """Fresh parameters and optimiser state for one run."""
    key, net_key = jax.random.split(key)
    params = _network(config, spec)[1](net_key, jnp.zeros(spec.obs_shape, jnp.float32))
    opt_state = optimizer(config, spec).init(params)
    return PPOState(params, opt_state, key, **protocol.counters_init())


def make_act(config: PPOConfig, spec: envs.EnvSpec):
    """``act(key, params, obs[N], greedy) -> action[N]``: the mode if greedy, else a sample.

    Continuous actions are clipped to the action bounds.
    """
    apply, _ = _network(config, spec)

    def act(key, params, obs, greedy: bool):
        out, _ = apply(params, obs)
        if spec.discrete:
            return jnp.argmax(out, -1) if greedy else networks.categorical(out).sample(seed=key)
        a = out[0] if greedy else networks.policy_distribution(out).sample(seed=key)
        return jnp.clip(a, spec.action_low, spec.action_high)

    return act


def make_policy(config: PPOConfig, spec: envs.EnvSpec, warmup: bool = False):
    """``policy(key, state, obs) -> (action, log_prob)``: a sample of π and its log-prob.

    Continuous samples are stored raw (the runner clips what the env receives), so the stored
    log-prob is that of the stored action.
    """
    del warmup
    apply, _ = _network(config, spec)

    def policy(key, state, obs):
        dist = networks.policy_distribution(apply(state.params, obs)[0])
        return dist.sample_and_log_prob(seed=key)

    return policy


def ppo_loss(apply, params: Params, batch: PPOBatch, config: PPOConfig):
    """PPO loss L on one minibatch (the module docstring's equation).

    Args:
      apply: ``apply(params, obs[B]) -> (policy_out, value[B])``.
      params: the actor and critic parameters (the only argument with gradients).
      batch: a :class:`PPOBatch` with leading axis [B]; its log-probs, values, advantages and
        targets are constants.
      config: supplies ``clip_eps``, ``vf_coef``, ``ent_coef`` and the two switches.

    Returns:
      ``(loss, info)``: the scalar loss (means over the minibatch) and its parts, with the
      approximate KL mean(ρ − 1 − log ρ) and the fraction of samples with |ρ − 1| > ε.
    """
    policy_out, v = apply(params, batch.obs)
    dist = networks.policy_distribution(policy_out)
    logp = dist.log_prob(batch.action)
    adv = returns.standardize(batch.advantage) if config.normalize_advantages else batch.advantage
    actor = losses.ppo_clip_loss(logp, batch.log_prob, adv, config.clip_eps)
    if config.clip_value_loss:
        critic = losses.clipped_value_loss(v, batch.value, batch.target, config.clip_eps)
    else:
        critic = losses.value_loss(v, batch.target)
    entropy = dist.entropy().mean()
    total = actor + config.vf_coef * critic - config.ent_coef * entropy
    log_ratio = logp - batch.log_prob
    ratio = jnp.exp(log_ratio)
    info = {
        "actor_loss": actor,
        "critic_loss": critic,
        "entropy": entropy,
        "approx_kl": jnp.mean(ratio - 1.0 - log_ratio),  # Schulman's k3 estimator
        "clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > config.clip_eps),
    }
    return total, info


def advantages(
    params: Params, traj: Transition, config: PPOConfig, spec: envs.EnvSpec
) -> tuple[Array, Array]:
    """``(Â, V_old)`` [T, N]: GAE over the batch with V_old from ``params``.

    δₜ = c·rₜ + γ(1 − terminatedₜ)·V(s'ₜ) − V(sₜ), with s'ₜ = ``traj.next_obs`` (the final
    observation at an episode end) and the recursion cut where an episode ended.
    """
    apply, _ = _network(config, spec)
    v = apply(params, traj.obs)[1]
    v_next = apply(params, traj.next_obs)[1]
    discount = config.gamma * (1.0 - traj.terminated.astype(jnp.float32))
    gae = jax.vmap(returns.gae_advantages, in_axes=(1, 1, 1, 1, 1, None), out_axes=1)
    r = traj.reward * config.reward_scale
    return gae(r, discount, v, v_next, traj.done, config.gae_lambda), v


def learn_step(
    state: PPOState, traj: Transition, config: PPOConfig, spec: envs.EnvSpec, warmup=False
) -> tuple[PPOState, dict[str, Array]]:
    """``num_epochs`` of clipped-gradient minibatch steps on a collected batch ``traj`` [T, N]."""
    del warmup
    key, perm_key = jax.random.split(state.key)
    apply, _ = _network(config, spec)
    adv, v = advantages(state.params, traj, config, spec)
    batch = PPOBatch(traj.obs, traj.action, traj.log_prob, v, adv, adv + v)
    batch = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), batch)  # [T, N] -> [T·N]
    opt = optimizer(config, spec)

    def minibatch_step(carry, mb):
        params, opt_state = carry
        grads, info = jax.grad(ppo_loss, argnums=1, has_aux=True)(apply, params, mb, config)
        params, opt_state = optim.optimizer_step(opt, grads, opt_state, params)
        return (params, opt_state), {**info, "grad_norm": optax.tree.norm(grads)}

    carry = (state.params, state.opt_state)
    (params, opt_state), info = optim.minibatch_epochs(
        perm_key, minibatch_step, carry, batch, config.num_epochs, config.num_minibatches
    )
    metrics = {**jax.tree.map(jnp.mean, info), "advantage_mean": adv.mean()}
    return state._replace(params=params, opt_state=opt_state, key=key), metrics


AGENT = protocol.define(
    "ppo", PPOConfig, presets.PPO, globals(), collection=protocol.steps_collection
)
