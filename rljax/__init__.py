"""rljax: actor-critic reinforcement learning in JAX.

``import rljax`` is light: it loads the return and loss functions and the shared types (jax,
chex and numpy only) and nothing else. Every other submodule (``rljax.agents``, ``rljax.envs``,
``rljax.networks``, ``rljax.replay``, ``rljax.run``, ``rljax.io``, ...) loads on first use.
Importing rljax writes nothing to ``os.environ`` and does not start JAX's backend; the XLA:CPU
set-up for training scripts is the explicit call :func:`rljax.run.xla_cpu.configure`.

The return functions take time-major arrays ``[T]`` or ``[T, ...]`` (trailing axes are
independent streams).
"""

import importlib as _importlib
import os as _os

# A first `import jax` writes defaults into os.environ (TF_CPP_MIN_LOG_LEVEL, read when jaxlib
# loads; TPU_SKIP_MDS_QUERY, read only on Cloud TPU VMs, where it is not set). Importing rljax
# changes nothing in the process, so the variables jax adds while rljax loads are taken out.
_ENVIRON = set(_os.environ)

from rljax import losses, returns, types  # noqa: E402
from rljax.losses import (  # noqa: E402
    clipped_value_loss,
    dpg_loss,
    entropy_loss,
    policy_gradient_loss,
    ppo_clip_loss,
    sac_actor_loss,
    sac_actor_loss_discrete,
    soft_q_target,
    soft_q_target_discrete,
    temperature_loss,
    value_loss,
)
from rljax.returns import (  # noqa: E402
    discounted_returns,
    gae_advantages,
    lambda_returns,
    standardize,
    td_errors,
)
from rljax.types import Transition  # noqa: E402

for _name in set(_os.environ) - _ENVIRON:  # empty when jax was imported before rljax
    del _os.environ[_name]
del _ENVIRON

__version__ = "0.1.0"

# Loaded on first attribute access (module __getattr__), so `import rljax` stays light.
_LAZY = (
    "agents",
    "envs",
    "envs_brax",
    "envs_gymnasium",
    "evaluation",
    "lunar_lander",
    "io",
    "networks",
    "replay",
    "rollout",
    "run",
    "stats",
)


def __getattr__(name):
    if name in _LAZY:
        return _importlib.import_module(f"rljax.{name}")
    raise AttributeError(f"module 'rljax' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Transition",
    "clipped_value_loss",
    "discounted_returns",
    "dpg_loss",
    "entropy_loss",
    "gae_advantages",
    "lambda_returns",
    "losses",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "returns",
    "sac_actor_loss",
    "sac_actor_loss_discrete",
    "soft_q_target",
    "soft_q_target_discrete",
    "standardize",
    "td_errors",
    "temperature_loss",
    "types",
    "value_loss",
]
