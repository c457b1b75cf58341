"""flax.linen networks: MLP torsos, policy heads and critics.

Hidden layers use orthogonal initialisation with gain √2; policy heads use a small gain
(0.01) so the initial policy is near uniform; value heads gain 1 (Andrychowicz et al. 2021,
https://arxiv.org/abs/2006.05990).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rljax.types import Array

ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh, "silu": nn.silu, "elu": nn.elu}


def orthogonal(scale: float = 1.0) -> Callable:
    """:func:`jax.nn.initializers.orthogonal`, batched as a loop: the same values, one matrix
    at a time under ``vmap``.

    The orthogonal matrix comes from a LAPACK QR. Batched over runs (``jax.vmap`` of an
    init, or of a whole training run with its init), jaxlib 0.10's CPU QR splits the batch
    into tasks on XLA:CPU's thread pool and blocks its own pool thread until they finish;
    when as many batched QRs run at once as the pool has threads (several layers, several
    host devices), every thread waits and the program never finishes. One QR per matrix
    runs inline, so initialisation finishes whatever the pool size.
    """
    base = nn.initializers.orthogonal(scale)

    def init(key: Array, shape: Sequence[int], dtype=jnp.float32) -> Array:
        draw = jax.custom_batching.sequential_vmap(lambda k: base(k, shape, dtype))
        return draw(key)

    return init


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(gain))


class MLP(nn.Module):
    """A stack of dense layers, each followed by the activation."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = act(_dense(size, np.sqrt(2))(x))
        return x


class CategoricalPolicy(nn.Module):
    """MLP torso and a logits head for a discrete action space."""

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        return _dense(self.num_actions, 0.01)(x)


class GaussianPolicy(nn.Module):
    """MLP torso, a mean head and a state-independent log standard deviation."""

    action_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, obs: Array) -> tuple[Array, Array]:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        mean = _dense(self.action_dim, 0.01)(x)
        log_std = self.param(
            "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
        )
        return mean, jnp.broadcast_to(log_std, mean.shape)


class ValueCritic(nn.Module):
    """MLP torso and a scalar value head: V(s)."""

    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        return _dense(1, 1.0)(x).squeeze(-1)


class SharedActorCritic(nn.Module):
    """One shared trunk with an actor (logits) head and a critic (value) head.

    The Keras "Actor Critic Method" tutorial's network: a 128-unit ReLU trunk.
    """

    num_actions: int
    hidden_sizes: Sequence[int] = (128,)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: Array) -> tuple[Array, Array]:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        logits = _dense(self.num_actions, 0.01)(x)
        value = _dense(1, 1.0)(x).squeeze(-1)
        return logits, value


class DeterministicActor(nn.Module):
    """μ(s): MLP torso, tanh output scaled to the action bounds [low, high]."""

    action_dim: int
    action_low: float
    action_high: float
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        x = nn.tanh(_dense(self.action_dim, 0.01)(x))
        scale = (self.action_high - self.action_low) / 2.0
        return self.action_low + (x + 1.0) * scale


class QCritic(nn.Module):
    """Q(s, a): MLP over the concatenated observation and action."""

    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: Array, action: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(jnp.concatenate([obs, action], axis=-1))
        return _dense(1, 1.0)(x).squeeze(-1)


class QValues(nn.Module):
    """Q(s, ·): MLP over the observation, one value per discrete action."""

    num_actions: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        return _dense(self.num_actions, 1.0)(x)


class SquashedGaussianActor(nn.Module):
    """A tanh-squashed Gaussian policy's parameters: ``(mean, log_std)`` of the pre-tanh
    Gaussian, ``log_std`` state-dependent and kept in [log_std_min, log_std_max] by a scaled
    tanh (as in SAC implementations since Haarnoja et al. 2018). See :func:`tanh_gaussian_sample`.
    """

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    activation: str = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs: Array) -> tuple[Array, Array]:
        x = MLP(self.hidden_sizes, self.activation)(obs)
        mean = _dense(self.action_dim, 0.01)(x)
        raw = _dense(self.action_dim, 0.01)(x)
        span = self.log_std_max - self.log_std_min
        return mean, self.log_std_min + 0.5 * span * (jnp.tanh(raw) + 1.0)


def log1m_tanh_sq(u: Array) -> Array:
    """log(1 − tanh²(u)) = 2·(log 2 − u − softplus(−2u)), finite for every finite u.

    The direct form underflows to log(0) = −inf once |u| exceeds about 9 in float32.
    """
    return 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def tanh_gaussian_log_prob(
    mean: Array, log_std: Array, u: Array, low: Array | float, high: Array | float
) -> Array:
    """log-density of the action a = low + (tanh(u) + 1)·h, h = (high − low)/2, given its
    pre-tanh value u ~ N(mean, exp(log_std)²), by the change of variables
    log p(a) = Σ_i [log N(u_i) − log(1 − tanh²(u_i)) − log h_i], summed over the last axis.

    Stable at the bounds: it never forms 1 − tanh², so |u| of 20 or 100 gives a finite value.
    """
    half = (jnp.asarray(high) - jnp.asarray(low)) / 2.0
    z = (u - mean) * jnp.exp(-log_std)
    log_normal = -0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    per_dim = log_normal - log1m_tanh_sq(u) - jnp.log(jnp.broadcast_to(half, u.shape))
    return jnp.sum(per_dim, axis=-1)


def tanh_gaussian_sample(
    key: Array, mean: Array, log_std: Array, low: Array | float, high: Array | float
) -> tuple[Array, Array]:
    """``(action, log_prob)``: a reparameterised sample u = mean + σ·ε, ε ~ N(0, I), squashed
    and scaled to [low, high], with its log-density (:func:`tanh_gaussian_log_prob`). The
    gradient flows through the action to ``mean`` and ``log_std``."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return tanh_gaussian_mode(u, low, high), tanh_gaussian_log_prob(mean, log_std, u, low, high)


def tanh_gaussian_mode(mean: Array, low: Array | float, high: Array | float) -> Array:
    """The squashed mean low + (tanh(mean) + 1)·h: the greedy action."""
    return low + (jnp.tanh(mean) + 1.0) * (jnp.asarray(high) - jnp.asarray(low)) / 2.0


def tanh_gaussian_log_prob_of_action(
    mean: Array,
    log_std: Array,
    action: Array,
    low: Array | float,
    high: Array | float,
    eps: float = 1e-6,
) -> Array:
    """:func:`tanh_gaussian_log_prob` of an action in [low, high]: u = atanh(y) with the
    normalised action y clipped to [−1 + eps, 1 − eps], so actions at the bounds stay finite."""
    half = (jnp.asarray(high) - jnp.asarray(low)) / 2.0
    y = jnp.clip((action - low) / half - 1.0, -1.0 + eps, 1.0 - eps)
    return tanh_gaussian_log_prob(mean, log_std, jnp.arctanh(y), low, high)


def categorical(logits: Array) -> distrax.Categorical:
    """A categorical distribution over the last axis of ``logits``."""
    return distrax.Categorical(logits=logits)


def diag_gaussian(mean: Array, log_std: Array) -> distrax.MultivariateNormalDiag:
    """A diagonal Gaussian; its ``log_prob`` sums over the action dimension."""
    return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))


def policy_distribution(policy_out) -> distrax.Distribution:
    """Categorical from logits, or a diagonal Gaussian from ``(mean, log_std)``."""
    if isinstance(policy_out, tuple):
        return diag_gaussian(*policy_out)
    return categorical(policy_out)


class CriticEnsemble(NamedTuple):
    """An actor and K critics over stacked parameters.

    ``actor(params, obs[..., O])`` is the actor's output (an action, or a distribution's
    parameters); ``critic(params, obs, a) -> q[K, ...]`` (for a critic of the observation
    alone, ``critic(params, obs) -> q[K, ..., A]``); ``critic_one(params of one critic, ...)``
    applies one critic; ``init_actor(key, obs)``; ``init_critic(key, obs[, action])`` gives
    parameters with a leading [K] axis.
    """

    actor: Callable
    critic: Callable
    critic_one: Callable
    init_actor: Callable
    init_critic: Callable


def critic_ensemble(actor: nn.Module, q: nn.Module, num_critics: int) -> CriticEnsemble:
    """``actor`` and ``num_critics`` copies of the critic ``q`` (each its own initialisation).

    The critics' parameters are stacked on a leading axis; :attr:`CriticEnsemble.critic`
    applies each critic to its slice (plain matmuls under a seed ``vmap`` rather than doubly
    batched ones) and stacks the values [K, ...].
    """
    k = num_critics

    def critic(params, *inputs):
        return jnp.stack(
            [q.apply(jax.tree.map(lambda x, i=i: x[i], params), *inputs) for i in range(k)]
        )

    def init_critic(key, *inputs):  # each critic its own key
        return jax.vmap(lambda kk: q.init(kk, *inputs))(jax.random.split(key, k))

    return CriticEnsemble(actor.apply, critic, q.apply, actor.init, init_critic)
