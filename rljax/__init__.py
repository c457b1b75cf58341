"""rljax: actor-critic reinforcement learning in JAX.

The return and loss functions are the public API; they take one stream of T steps and are
batched with ``jax.vmap``.
"""

import os as _os

from rljax._xla_cpu import configure as _configure_xla_cpu

_configure_xla_cpu(_os.environ)

from rljax import envs, evaluation, losses, networks, replay, returns, rollout, stats
from rljax.losses import (
    clipped_value_loss,
    dpg_loss,
    entropy_loss,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)
from rljax.returns import (
    discounted_returns,
    gae_advantages,
    lambda_returns,
    standardize,
    td_errors,
)
from rljax.types import Transition

__version__ = "0.1.0"

__all__ = [
    "Transition",
    "clipped_value_loss",
    "discounted_returns",
    "dpg_loss",
    "entropy_loss",
    "envs",
    "evaluation",
    "gae_advantages",
    "lambda_returns",
    "losses",
    "networks",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "replay",
    "returns",
    "rollout",
    "standardize",
    "stats",
    "td_errors",
    "value_loss",
]
