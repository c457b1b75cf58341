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


def _dense(features: int, gain: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain))


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


def categorical(logits: Array) -> distrax.Categorical:
    """A categorical distribution over the last axis of ``logits``."""
    return distrax.Categorical(logits=logits)


def diag_gaussian(mean: Array, log_std: Array) -> distrax.MultivariateNormalDiag:
    """A diagonal Gaussian; its ``log_prob`` sums over the action dimension."""
    return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))


class CriticEnsemble(NamedTuple):
    """An actor and K critics over stacked parameters.

    ``actor(params, obs[..., O]) -> a[..., A]``; ``critic(params, obs, a) -> q[K, ...]``;
    ``critic_one(params of one critic, obs, a) -> q[...]``; ``init_actor(key, obs)``;
    ``init_critic(key, obs, action)`` gives parameters with a leading [K] axis.
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

    def critic(params, obs, action):
        return jnp.stack(
            [q.apply(jax.tree.map(lambda x, i=i: x[i], params), obs, action) for i in range(k)]
        )

    def init_critic(key, obs, action):
        return jax.vmap(q.init, (0, None, None))(jax.random.split(key, k), obs, action)

    return CriticEnsemble(actor.apply, critic, q.apply, actor.init, init_critic)
