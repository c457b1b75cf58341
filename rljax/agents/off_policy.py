"""What the replay-based agents (DDPG, TD3, SAC) share: the replay fields of their configs,
what the buffer stores, the warm-up of uniformly random actions, the bootstrap discount and
target, Gaussian action noise, and the initialisation and loss of a critic ensemble.

Each update collects ``steps_per_update(spec)`` env steps per seed and stores them in a
functional replay buffer (:mod:`rljax.replay`); the first ``warmup_updates`` updates act
uniformly at random in the action space and only store (the runner runs them as their own
phase, so no gradient is computed and discarded). Stored ``next_obs`` is the true successor
(the final observation at an episode end) and ``terminated`` excludes truncation, so a time
limit still bootstraps.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from flax import struct

from rljax import envs, losses, networks, replay
from rljax.agents import base, normalize, optim, protocol
from rljax.types import Array, Params, PRNGKey, Transition

S, POS = base.static, base.POSITIVE


@struct.dataclass
class ReplayConfig(base.Normalization):
    """Fields every replay-based agent has (static: they set shapes and loop lengths)."""

    total_steps: int = S(20_000, POS)
    num_envs: int = S(1, POS)
    buffer_size: int = S(20_000, POS)
    batch_size: int = S(128, POS)
    learning_starts: int = S(1_000, POS)
    hidden_size: int = S(64, POS)
    num_layers: int = S(2, POS)
    activation: str = S("relu", base.one_of(*networks.ACTIVATIONS))
    num_critics: int = S(1, POS)

    steps_field = "num_steps"  # not a field: the config field of the steps per env per update

    def steps_per_env(self) -> int:
        """Env steps each env plays per update: the value of the ``steps_field`` field."""
        return getattr(self, self.steps_field)

    def steps_per_update(self, spec: envs.EnvSpec) -> int:
        """Env steps simulated per update (per seed): ``num_envs`` x :meth:`steps_per_env`."""
        del spec
        return self.num_envs * self.steps_per_env()

    def validate_replay(self, spec: envs.EnvSpec) -> None:
        """Every field's declared check, then the checks between replay fields."""
        base.check_fields(self, spec)
        if self.batch_size > self.buffer_size:
            raise base.ConfigError(
                f"--batch-size {self.batch_size} must be <= --buffer-size {self.buffer_size}"
            )
        if self.learning_starts < self.batch_size:
            raise base.ConfigError(
                f"--learning-starts {self.learning_starts} must be >= --batch-size "
                f"{self.batch_size} (the warm-up must fill at least one batch)"
            )
        n = base.num_updates(self.total_steps, self.steps_per_update(spec))
        if n <= self.warmup_updates(spec):
            raise base.ConfigError(
                f"--total-steps {self.total_steps} must exceed --learning-starts "
                f"{self.learning_starts} by at least one update ({self.steps_per_update(spec)} "
                "env steps)"
            )

    def warmup_updates(self, spec: envs.EnvSpec) -> int:
        """Updates of uniformly random actions (no learning) that cover ``learning_starts``."""
        return -(-self.learning_starts // self.steps_per_update(spec))

    def hidden_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,) * self.num_layers


class Experience(NamedTuple):
    """What the replay buffer stores per env step."""

    obs: Array  # [*obs_shape]
    action: Array  # [A] (continuous) or [] int (discrete)
    reward: Array  # []
    next_obs: Array  # [*obs_shape]: the true successor (the final observation at an end)
    terminated: Array  # [] bool: termination only, never truncation


def experience(traj: Transition, step: int | None = None) -> Experience:
    """Step ``step`` of ``traj`` [T, N] as [N] items, or (``None``) every step as [T·N]
    items in time order."""
    items = Experience(traj.obs, traj.action, traj.reward, traj.next_obs, traj.terminated)
    if step is not None:
        return jax.tree.map(lambda x: x[step], items)
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), items)


def buffer(config: ReplayConfig) -> replay.ReplayBuffer:
    return replay.replay_buffer(capacity=config.buffer_size, batch_size=config.batch_size)


def sample(key: PRNGKey, config: ReplayConfig, state) -> Experience:
    """A uniform batch from ``state.replay``; with ``normalize_obs`` its observations are
    normalised with ``state.obs_stats`` (the buffer keeps raw observations)."""
    batch = buffer(config).sample(key, state.replay)
    if not config.normalize_obs:
        return batch
    norm = lambda x: normalize.normalize(state.obs_stats, x)  # noqa: E731
    return batch._replace(obs=norm(batch.obs), next_obs=norm(batch.next_obs))


def init_replay(config: ReplayConfig, spec: envs.EnvSpec) -> replay.ReplayState:
    """An empty buffer for the env's observations and actions."""
    obs = jnp.zeros(spec.obs_shape, jnp.float32)
    action = zero_action(spec)
    return buffer(config).init(Experience(obs, action, jnp.zeros(()), obs, jnp.zeros((), bool)))


def zero_action(spec: envs.EnvSpec) -> Array:
    """One action of the env's space, all zeros (int32 [] or float32 [A])."""
    if spec.discrete:
        return jnp.zeros((), jnp.int32)
    return jnp.zeros((spec.num_actions,), jnp.float32)


def uniform_actions(key: PRNGKey, spec: envs.EnvSpec, n: int) -> Array:
    """``n`` actions drawn uniformly from the action space: the warm-up policy."""
    if spec.discrete:
        return jax.random.randint(key, (n,), 0, spec.num_actions)
    shape = (n, spec.num_actions)
    return jax.random.uniform(key, shape, minval=spec.action_low, maxval=spec.action_high)


def behaviour(policy, spec: envs.EnvSpec, warmup: bool):
    """``policy(key, state, obs[N]) -> (action[N], log_prob[N])``, or during the warm-up the
    uniform policy with the same signature (log-probs 0)."""
    if not warmup:
        return policy
    return lambda key, state, obs: (
        uniform_actions(key, spec, obs.shape[0]),
        jnp.zeros(obs.shape[:1]),
    )


def discount(gamma: Array | float, terminated: Array) -> Array:
    """γ·(1 − terminated): only termination stops the bootstrap."""
    return gamma * (1.0 - terminated.astype(jnp.float32))


def critic_target(r_t: Array, discount_t: Array, q_t: Array) -> Array:
    """y = r_t + discount_t·q_t with the gradient stopped; discount_t = γ·(1 − terminated_t).

    Args:
      r_t: rewards, [B].
      discount_t: γ·(1 − terminated), [B].
      q_t: target-network values of the next state, [B].
    """
    chex.assert_rank([r_t, discount_t, q_t], 1)
    chex.assert_equal_shape([r_t, discount_t, q_t])
    return jax.lax.stop_gradient(r_t + discount_t * q_t)


def noisy_action(key: PRNGKey, mu: Array, sigma, clip, spec: envs.EnvSpec) -> Array:
    """clip(μ + clip(σ·h·ε, −c·h, c·h), low, high), ε ~ N(0, I), h the action half-range."""
    half = (spec.action_high - spec.action_low) / 2.0
    noise = jnp.clip(sigma * half * jax.random.normal(key, mu.shape), -clip * half, clip * half)
    return jnp.clip(mu + noise, spec.action_low, spec.action_high)


def q_values(
    critic_params: Params, nets: networks.CriticEnsemble, spec: envs.EnvSpec, obs, action
) -> Array:
    """Every critic's Q(s, a) [K, B] (discrete: Q(s, ·) read at the integer action)."""
    if spec.discrete:
        q = nets.critic(critic_params, obs)  # [K, B, A]
        return jnp.take_along_axis(q, action[None, :, None], axis=-1)[..., 0]
    return nets.critic(critic_params, obs, action)


def init_networks(key: PRNGKey, nets: networks.CriticEnsemble, spec: envs.EnvSpec):
    """``(key, actor_params, critic_params)``: ``key`` split into the next key and the actor's
    and the critics' (Q(s, a), or Q(s, ·) for discrete actions), initialised on zero inputs."""
    key, actor_key, critic_key = jax.random.split(key, 3)
    obs = jnp.zeros(spec.obs_shape, jnp.float32)
    inputs = (obs,) if spec.discrete else (obs, zero_action(spec))
    return key, nets.init_actor(actor_key, obs), nets.init_critic(critic_key, *inputs)


def zero_metrics(*names: str) -> dict[str, Array]:
    """The metrics of a warm-up update (nothing learned)."""
    return {name: jnp.zeros((), jnp.float32) for name in names}


def ensemble_value_loss(q: Array, y_t: Array) -> Array:
    """Σ_k mean_B ½(y − Q_k)²: each critic of the ensemble [K, B] regresses on one target."""
    return jnp.sum(jax.vmap(losses.value_loss, in_axes=(0, None))(q, y_t))


def critic_loss(critic_params: Params, nets, spec: envs.EnvSpec, batch, y_t: Array):
    """Σ_k mean_B ½(y − Q_k(s, a))² (each critic regresses on the same target ``y_t`` [B]);
    and the values Q [K, B]."""
    q = q_values(critic_params, nets, spec, batch.obs, batch.action)
    return ensemble_value_loss(q, y_t), q


def critic_step(state, optimizer, nets, spec: envs.EnvSpec, batch, y_t: Array):
    """One optimiser step of the critics on :func:`critic_loss`: ``(state, loss, Q [K, B])``,
    the state's ``critic_params`` and ``critic_opt_state`` updated."""
    params, opt_state, loss, q = optim.descend(
        optimizer, critic_loss, state.critic_params, state.critic_opt_state, nets, spec, batch, y_t
    )
    return state._replace(critic_params=params, critic_opt_state=opt_state), loss, q


def repeat(step, state, keys: Array):
    """``step(state, key) -> (state, metrics)`` once per key (in order), metrics averaged.

    One key runs the step directly; more run in a ``lax.scan``.
    """
    if keys.shape[0] == 1:
        return step(state, keys[0])
    state, metrics = jax.lax.scan(step, state, keys)
    return state, jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)


def define(name: str, config: type, presets: dict, namespace: dict):
    """The :class:`~rljax.agents.protocol.Agent` record of a replay-based agent module: it
    collects ``num_envs`` x ``config.steps_per_env()`` steps per update, acts with
    ``actor_params``, and runs ``config.warmup_updates(spec)`` warm-up updates; the buffer
    keeps raw observations (``replay_obs_stats``)."""
    return protocol.define(
        name, config, presets, namespace,
        collection=lambda c, spec: protocol.Collection(c.num_envs, c.steps_per_env()),
        params=lambda state: state.actor_params,
        warmup_updates=lambda c, spec: c.warmup_updates(spec),
        replay_obs_stats=True,
    )  # fmt: skip
