"""Shared test data: a [T, N] batch with a termination and a truncation, and GAE by a loop."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rljax.types import Transition


def ended_batch(spec, seed=0, T=6, N=3):
    """A consistent [T, N] batch: env 0 terminates at t=2, env 1 is truncated at t=3 (its
    ``next_obs`` is the final observation, not the next step's reset observation), env 2 runs
    on past the cut. Elsewhere ``next_obs[t] == obs[t + 1]``."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(scale=0.5, size=(T + 1, N, *spec.obs_shape)).astype(np.float32)
    next_obs = obs[1:].copy()
    terminated = np.zeros((T, N), bool)
    truncated = np.zeros((T, N), bool)
    terminated[2, 0] = True
    truncated[3, 1] = True
    for t, n in ((2, 0), (3, 1)):  # the final observation differs from the reset one
        next_obs[t, n] = rng.normal(scale=0.5, size=spec.obs_shape)
    return Transition(
        obs=jnp.asarray(obs[:T]),
        action=jnp.asarray(rng.integers(0, spec.num_actions, (T, N)), jnp.int32),
        log_prob=jnp.zeros((T, N)),
        reward=jnp.asarray(rng.normal(size=(T, N)), jnp.float32),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_obs=jnp.asarray(next_obs),
        episode_return=jnp.zeros((T, N)),
        episode_length=jnp.zeros((T, N), jnp.int32),
    )


def np_gae(r, stop, done, v, v_next, gamma, lam):
    """GAE by a plain loop: δₜ = rₜ + γ(1 − stopₜ)·v_nextₜ − vₜ, recursion cut where done."""
    T, N = r.shape
    adv = np.zeros((T, N))
    for n in range(N):
        a = 0.0
        for t in reversed(range(T)):
            delta = r[t, n] + gamma * (1.0 - stop[t, n]) * v_next[t, n] - v[t, n]
            a = delta + gamma * lam * (1.0 - done[t, n]) * a
            adv[t, n] = a
    return adv
