"""A custom actor-critic written only from rljax's public functions, trained on many seeds.

What it shows: how your own agent uses rljax as a library. The agent takes nothing from
``rljax.agents`` or ``rljax.run`` (the script only calls ``rljax.run.xla_cpu.configure``, the
XLA:CPU set-up, before JAX starts); its pieces are

* ``rljax.envs``: gymnax CartPole-v1, ``reset``/``step`` vectorised over N envs (gymnax 1.0:
  ``terminated`` and ``truncated`` apart, ``info["final_observation"]`` at an episode end);
* ``rljax.networks``: the flax actor (``CategoricalPolicy``) and critic (``ValueCritic``), and
  ``categorical`` (a distrax distribution) to sample actions and take log-probabilities;
* ``rljax.gae_advantages``, ``rljax.standardize``, ``rljax.policy_gradient_loss``,
  ``rljax.value_loss``, ``rljax.entropy_loss``: the returns and the losses;
* ``rljax.evaluation.evaluate``: greedy evaluation episodes.

Pure functions, the key first, every loop a ``lax.scan``, arrays time-major ([T, N]).
``make_train(config, env, env_params)`` returns ``train(key)`` for ONE seed; many seeds are
``jax.jit(jax.vmap(train))(keys)``, one compile for all of them.

Run it (about a minute on a 2-core CPU; with these defaults 7 of the 8 seeds reached the
500-step cap of CartPole-v1)::

    python examples/custom_actor_critic.py --num-seeds 8 --total-steps 500000

It prints, per seed, the mean return of the training episodes completed in the last tenth of
the updates and the mean greedy evaluation return.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rljax
from rljax import envs, evaluation, networks


class Config(NamedTuple):
    """Hyperparameters (frozen: a NamedTuple cannot be mutated)."""

    total_steps: int = 500_000  # env steps per seed
    num_envs: int = 8
    num_steps: int = 8  # rollout length T per update
    hidden_sizes: tuple[int, ...] = (64, 64)
    lr: float = 1e-3  # decays linearly to 0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    eval_episodes: int = 10


class TrainState(NamedTuple):
    """One seed's state between updates."""

    params: dict[str, Any]  # {"actor": ..., "critic": ...}
    opt_state: optax.OptState
    env_state: envs.VecEnvState
    obs: jax.Array  # [N, *obs_shape]
    key: jax.Array


def make_train(config: Config, env: Any, env_params: Any):
    """``train(key) -> (params, metrics[num_updates], eval_returns[eval_episodes])``."""
    spec = envs.spec(env, env_params)
    actor = networks.CategoricalPolicy(spec.num_actions, config.hidden_sizes)
    critic = networks.ValueCritic(config.hidden_sizes)
    num_updates = config.total_steps // (config.num_envs * config.num_steps)
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(optax.linear_schedule(config.lr, 0.0, num_updates)),
    )

    def env_step(params, carry, key):
        """One step of the N envs: the transition [N] (``next_obs``: the final observation)."""
        env_state, obs = carry
        key_act, key_env = jax.random.split(key)
        dist = networks.categorical(actor.apply(params["actor"], obs))
        action = dist.sample(seed=key_act)
        next_obs, env_state, reward, terminated, truncated, info = envs.step(
            key_env, env, env_params, env_state, action
        )
        transition = rljax.Transition(
            obs=obs,
            action=action,
            log_prob=dist.log_prob(action),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            next_obs=info["final_observation"],  # the true successor, also at an episode end
            episode_return=info["episode_return"],
            episode_length=info["episode_length"],
        )
        return (env_state, next_obs), transition

    def loss_fn(params, traj: rljax.Transition):
        """A2C loss on a [T, N] trajectory: policy gradient + value + entropy terms."""
        logits = actor.apply(params["actor"], traj.obs)  # [T, N, A]
        v_tm1 = critic.apply(params["critic"], traj.obs)  # [T, N]: V(s_t)
        v_t = critic.apply(params["critic"], traj.next_obs)  # V(s'_t), final obs at an end
        discount_t = config.gamma * (1.0 - traj.terminated)  # only termination zeroes it
        adv_t = rljax.gae_advantages(
            traj.reward, discount_t, v_tm1, v_t, traj.done, lambda_=config.gae_lambda
        )  # gradients stopped
        logp_t = networks.categorical(logits).log_prob(traj.action)
        pg = rljax.policy_gradient_loss(logp_t, rljax.standardize(adv_t))
        vf = rljax.value_loss(v_tm1, adv_t + v_tm1)  # target = the λ-return
        ent = rljax.entropy_loss(logits)
        loss = pg + config.vf_coef * vf + config.ent_coef * ent
        return loss, {"policy_loss": pg, "value_loss": vf, "entropy": -ent}

    def update(state: TrainState, _):
        key, key_rollout = jax.random.split(state.key)
        step_keys = jax.random.split(key_rollout, config.num_steps)
        (env_state, obs), traj = jax.lax.scan(
            lambda c, k: env_step(state.params, c, k), (state.env_state, state.obs), step_keys
        )
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, traj)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["return_sum"] = jnp.sum(jnp.where(traj.done, traj.episode_return, 0.0))
        metrics["episodes"] = jnp.sum(traj.done)
        return TrainState(params, opt_state, env_state, obs, key), metrics

    def greedy(key, params, obs):
        del key
        return jnp.argmax(actor.apply(params["actor"], obs), axis=-1)

    def train(key):
        key_actor, key_critic, key_env, key_eval, key = jax.random.split(key, 5)
        env_state, obs = envs.reset(key_env, env, env_params, config.num_envs)
        params = {"actor": actor.init(key_actor, obs), "critic": critic.init(key_critic, obs)}
        state = TrainState(params, optimizer.init(params), env_state, obs, key)
        state, metrics = jax.lax.scan(update, state, None, length=num_updates)
        eval_returns = evaluation.evaluate(
            key_eval, greedy, state.params, env, env_params, config.eval_episodes
        )
        return state.params, metrics, eval_returns

    return train


def final_training_return(metrics: dict[str, np.ndarray], fraction: float = 0.1) -> np.ndarray:
    """Per seed: mean return of the episodes completed in the last ``fraction`` of updates."""
    last = max(1, int(round(metrics["episodes"].shape[-1] * fraction)))
    total = metrics["return_sum"][..., -last:].sum(-1)
    count = metrics["episodes"][..., -last:].sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def main(argv: list[str] | None = None) -> int:
    default = Config()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-seeds", type=int, default=8, help="seeds trained at once (vmap)")
    p.add_argument("--seed", type=int, default=0, help="root seed: seed i uses fold_in(key, i)")
    p.add_argument("--total-steps", type=int, default=default.total_steps, help="per seed")
    p.add_argument("--lr", type=float, default=default.lr)
    p.add_argument("--eval-episodes", type=int, default=default.eval_episodes)
    args = p.parse_args(argv)

    config = Config(total_steps=args.total_steps, lr=args.lr, eval_episodes=args.eval_episodes)
    if config.total_steps < config.num_envs * config.num_steps:
        p.error(f"--total-steps must be >= {config.num_envs * config.num_steps} (one update)")
    env, env_params = envs.make("CartPole-v1")
    root = jax.random.key(args.seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(args.num_seeds))

    train = jax.jit(jax.vmap(make_train(config, env, env_params)))
    _, metrics, eval_returns = jax.device_get(train(keys))

    final = final_training_return(metrics)
    print(f"custom actor-critic on CartPole-v1, {args.num_seeds} seeds x {args.total_steps} steps")
    for i in range(args.num_seeds):
        print(
            f"seed {i}: final training return {final[i]:.1f}, "
            f"greedy eval return {eval_returns[i].mean():.1f}"
        )
    return 0


if __name__ == "__main__":
    from rljax.run import xla_cpu

    xla_cpu.configure(strict=False)  # a larger XLA:CPU thread pool, before JAX starts
    sys.exit(main())
