"""rljax: actor-critic reinforcement learning in JAX.

The return and loss functions are the public API; they take one stream of T steps and are
batched with ``jax.vmap``.
"""

import os as _os

# XLA:CPU can deadlock (every thread asleep) on some multi-seed programs in jaxlib 0.10 (seen
# with twin-critic TD3 at >= 8 seeds and with several host devices). These two flags avoid it.
# They take effect only if set before JAX starts its backend; RLJAX_KEEP_XLA_FLAGS=1 opts out.
_XLA_CPU_FLAGS = (
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "--xla_cpu_parallel_codegen_split_count=1",
)
if not _os.environ.get("RLJAX_KEEP_XLA_FLAGS"):
    _flags = _os.environ.get("XLA_FLAGS", "")
    for _flag in _XLA_CPU_FLAGS:
        if _flag.split("=")[0] not in _flags:
            _flags = f"{_flags} {_flag}".strip()
    _os.environ["XLA_FLAGS"] = _flags

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
