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

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rljax import envs, losses, networks, returns
from rljax.agents import common
from rljax.types import Array, Params, PRNGKey, Transition

# fmt: off
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # the same as "cleanrl"
    # CleanRL's ppo.py on CartPole-v1 (Huang et al. 2022): 4 envs x 128 steps, 4 epochs x 4
    # minibatches, separate 2x64 tanh actor and critic, 5e5 env steps. (CleanRL lowers the
    # learning rate once per update; rljax lowers it every minibatch step.)
    "cleanrl": dict(
        total_steps=500_000, num_envs=4, num_steps=128, num_epochs=4, num_minibatches=4,
        hidden_size=64, num_layers=2, activation="tanh", anneal_lr=True,
        normalize_advantages=True, clip_value_loss=True, lr=2.5e-4, gamma=0.99,
        gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
        adam_eps=1e-5,
    ),
    # rejax's configs/gymnax/cartpole.yaml (ppo section). rejax clips gradients element-wise
    # and keeps separate actor and critic Adams; here one Adam with global-norm clipping.
    "rejax": dict(
        total_steps=100_000, num_envs=5, num_steps=100, num_epochs=5, num_minibatches=5,
        anneal_lr=False, clip_value_loss=True, lr=7.5e-4, max_grad_norm=0.5, adam_eps=1e-8,
    ),
    # LunarLander-v3 through the Gymnasium bridge (rl-baselines3-zoo's PPO LunarLander
    # settings): 16 envs x 1024 steps, 4 epochs of minibatches of 64, γ 0.999, λ 0.98,
    # constant lr 3e-4, 2x64 tanh.
    "lunarlander": dict(
        total_steps=1_000_000, num_envs=16, num_steps=1024, num_epochs=4, num_minibatches=256,
        anneal_lr=False, clip_value_loss=False, lr=3e-4, gamma=0.999, gae_lambda=0.98,
        clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
    ),
    # Pendulum-v1 (continuous actions): shorter horizon, rewards scaled by 0.1.
    "pendulum": dict(
        total_steps=1_000_000, num_envs=16, num_steps=128, num_epochs=10, num_minibatches=8,
        clip_value_loss=False, lr=1e-3, gamma=0.95, gae_lambda=0.95, ent_coef=0.0,
        reward_scale=0.1,
    ),
}
# fmt: on


@struct.dataclass
class PPOConfig:
    """PPO hyperparameters. Loop and shape fields are static; floats are leaves (sweepable)."""

    # Loop and shape (static).
    total_steps: int = struct.field(pytree_node=False, default=500_000)  # env steps per seed
    num_envs: int = struct.field(pytree_node=False, default=4)
    num_steps: int = struct.field(pytree_node=False, default=128)  # rollout length
    num_epochs: int = struct.field(pytree_node=False, default=4)
    num_minibatches: int = struct.field(pytree_node=False, default=4)  # must divide the batch
    hidden_size: int = struct.field(pytree_node=False, default=64)
    num_layers: int = struct.field(pytree_node=False, default=2)
    activation: str = struct.field(pytree_node=False, default="tanh")
    anneal_lr: bool = struct.field(pytree_node=False, default=True)  # linear decay to 0
    normalize_advantages: bool = struct.field(pytree_node=False, default=True)  # per minibatch
    clip_value_loss: bool = struct.field(pytree_node=False, default=True)
    # Float hyperparameters (leaves).
    lr: float = 2.5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2  # ε of the ratio (and of the value, with clip_value_loss)
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5  # <= 0 turns clipping off
    adam_eps: float = 1e-5
    init_log_std: float = 0.0  # continuous actions: initial log σ of the Gaussian
    reward_scale: float = 1.0  # rewards are multiplied by this for learning (not for logging)

    def validate(self, spec: envs.EnvSpec) -> None:
        """Raise :class:`~rljax.agents.common.ConfigError` naming the first bad field."""
        counts = ("num_envs", "num_steps", "num_epochs", "num_minibatches", "hidden_size")
        for name in (*counts, "num_layers"):
            common.check_positive_int(name, getattr(self, name))
        batch = self.num_envs * self.num_steps
        if batch % self.num_minibatches:
            raise common.ConfigError(
                f"--num-minibatches {self.num_minibatches} must divide the batch "
                f"--num-envs x --num-steps = {batch}"
            )
        common.check_choice("activation", self.activation, tuple(networks.ACTIVATIONS))
        common.check_common(self.lr, self.gamma)
        common.check_float("gae_lambda", self.gae_lambda, 0.0, 1.0)
        common.check_float("clip_eps", self.clip_eps, 0.0, low_open=True)
        common.check_float("ent_coef", self.ent_coef, 0.0)
        common.check_float("vf_coef", self.vf_coef, 0.0)
        common.check_float("max_grad_norm", self.max_grad_norm, -math.inf)
        common.check_float("adam_eps", self.adam_eps, 0.0, low_open=True)
        common.check_float("init_log_std", self.init_log_std, -20.0, 2.0)
        common.check_float("reward_scale", self.reward_scale, 0.0, low_open=True)
        common.num_updates(self.total_steps, self.steps_per_update(spec))

    def steps_per_update(self, spec: envs.EnvSpec) -> int:
        """Env steps simulated per update (per seed)."""
        del spec
        return self.num_envs * self.num_steps


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
    return common.actor_critic_network(spec, *sizes, init_log_std=config.init_log_std)


def policy_distribution(policy_out):
    """Categorical from logits, or a diagonal Gaussian from ``(mean, log_std)``."""
    if isinstance(policy_out, tuple):
        return networks.diag_gaussian(*policy_out)
    return networks.categorical(policy_out)


def optimizer(config: PPOConfig, spec: envs.EnvSpec) -> optax.GradientTransformation:
    """Adam with global-norm clipping; annealed to 0 over every minibatch step of the run."""
    n = common.num_updates(config.total_steps, config.steps_per_update(spec))
    steps = n * config.num_epochs * config.num_minibatches
    return common.adam(
        config.lr, config.max_grad_norm, config.adam_eps, steps if config.anneal_lr else None
    )


def init(key: PRNGKey, config: PPOConfig, spec: envs.EnvSpec) -> PPOState:
    """Fresh parameters and optimiser state for one run."""
    key, net_key, _ = jax.random.split(key, 3)
    params = _network(config, spec)[1](net_key, jnp.zeros(spec.obs_shape, jnp.float32))
    opt_state = optimizer(config, spec).init(params)
    return PPOState(params, opt_state, key, **common.counters_init())


def make_act(config: PPOConfig, spec: envs.EnvSpec):
    """``act(key, params, obs[N], greedy) -> action[N]``: the mode if greedy, else a sample.

    Continuous actions are clipped to the action bounds.
    """
    apply, _ = _network(config, spec)

    def act(key, params, obs, greedy: bool):
        out, _ = apply(params, obs)
        if spec.discrete:
            return jnp.argmax(out, -1) if greedy else networks.categorical(out).sample(seed=key)
        a = out[0] if greedy else policy_distribution(out).sample(seed=key)
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
        return policy_distribution(apply(state.params, obs)[0]).sample_and_log_prob(seed=key)

    return policy


def minibatch_indices(
    key: PRNGKey, num_epochs: int, batch_size: int, num_minibatches: int
) -> Array:
    """One fresh permutation of ``range(batch_size)`` per epoch, split: [E, M, B/M] int32."""
    perms = jax.vmap(jax.random.permutation, (0, None))(
        jax.random.split(key, num_epochs), batch_size
    )
    return perms.reshape(num_epochs, num_minibatches, batch_size // num_minibatches)


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
    dist = policy_distribution(policy_out)
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
    key, _, perm_key = jax.random.split(state.key, 3)
    apply, _ = _network(config, spec)
    adv, v = advantages(state.params, traj, config, spec)
    batch = PPOBatch(traj.obs, traj.action, traj.log_prob, v, adv, adv + v)
    batch = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), batch)  # [T, N] -> [T·N]
    size = traj.reward.size
    idx = minibatch_indices(perm_key, config.num_epochs, size, config.num_minibatches)
    opt = optimizer(config, spec)

    def minibatch_step(carry, mb):
        params, opt_state = carry
        grads, info = jax.grad(ppo_loss, argnums=1, has_aux=True)(apply, params, mb, config)
        params, opt_state = common.optimizer_step(opt, grads, opt_state, params)
        return (params, opt_state), {**info, "grad_norm": optax.tree.norm(grads)}

    def epoch(carry, epoch_idx):
        # One gather per epoch puts the batch in this epoch's order, split [M, B/M]; the scan
        # then slices minibatches off it (cheaper than a gather per minibatch under vmap).
        split = jax.tree.map(
            lambda x: x[epoch_idx.reshape(-1)].reshape(*epoch_idx.shape, *x.shape[1:]), batch
        )
        return jax.lax.scan(minibatch_step, carry, split)

    (params, opt_state), info = jax.lax.scan(epoch, (state.params, state.opt_state), idx)
    metrics = {**jax.tree.map(jnp.mean, info), "advantage_mean": adv.mean()}
    return state._replace(params=params, opt_state=opt_state, key=key), metrics


AGENT = common.Agent(
    name="ppo",
    config=PPOConfig,
    presets=PRESETS,
    init=init,
    collection=lambda config, spec: common.Collection(config.num_envs, config.num_steps),
    make_policy=make_policy,
    learn_step=learn_step,
    make_act=make_act,
    env_key=lambda key: jax.random.split(key, 3)[2],
    collect_keys=lambda key, config, spec: common.split_keys(key, 3, 1, config.num_steps),
)
