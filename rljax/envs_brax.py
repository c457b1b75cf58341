"""Brax environments as gymnax environments: ``--env brax:NAME`` (the ``brax`` extra).

:class:`BraxEnv` wraps one ``brax.envs`` environment, WITHOUT Brax's own training wrappers
(``EpisodeWrapper``, ``AutoResetWrapper``), in gymnax 1.0's :class:`Environment` interface, so
rljax's gymnax runner collects and trains on it unchanged (inside jit, vmapped over envs and
seeds). The semantics are gymnax's (docs/conventions.md):

* ``step_env`` is one Brax step; ``terminated`` is Brax's ``done`` (a natural end, such as a
  hopper falling). Brax's raw envs have no time limit.
* The time limit (``EnvParams.max_steps_in_episode``, 1000 by default, Brax's usual episode
  length) is gymnax's: ``Environment.step`` sets ``truncated`` when the step count reaches
  it, auto-resets after either end, and keeps the real last observation in
  ``info["final_observation"]``. So at a time limit ``terminated`` is False and the
  bootstrap uses the final observation.
* Actions are in [-1, 1] (Brax's convention); rewards are Brax's.

Names: ``brax:NAME`` uses the env's default physics backend, ``brax:NAME:BACKEND`` another one
(:data:`BACKENDS`). Importing this module does not import Brax; :func:`make` does, and raises
a one-line :class:`ValueError` if Brax is missing or the name is unknown.
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

PREFIX = "brax:"
EXTRA_HINT = "brax env needs the brax extra: pip install -e '.[brax]'"
BACKENDS = ("generalized", "positional", "spring", "mjx")
DEFAULT_MAX_STEPS = 1000


def is_brax(env_name: str) -> bool:
    """Whether ``env_name`` names a Brax environment (``brax:NAME[:BACKEND]``)."""
    return env_name.startswith(PREFIX)


def parse_name(env_name: str) -> tuple[str, str | None]:
    """``(NAME, BACKEND or None)`` of ``brax:NAME[:BACKEND]``.

    Raises:
      ValueError: if the backend is not one of :data:`BACKENDS`.
    """
    name, _, backend = env_name.removeprefix(PREFIX).partition(":")
    if backend and backend not in BACKENDS:
        raise ValueError(
            f"--env {env_name}: unknown Brax backend {backend!r}; valid: {', '.join(BACKENDS)}"
        )
    return name, backend or None


@struct.dataclass
class EnvState(environment.EnvState):
    """The Brax state and the step count of the current episode."""

    time: jax.Array  # int32 []
    brax_state: Any  # brax.envs.State


@struct.dataclass
class EnvParams(environment.EnvParams):
    max_steps_in_episode: int = DEFAULT_MAX_STEPS


class BraxEnv(environment.Environment):
    """A ``brax.envs`` environment with gymnax 1.0's interface (see the module docstring).

    Args:
      env_name: ``brax:NAME`` or ``brax:NAME:BACKEND`` (``NAME`` alone is accepted too).
    """

    def __init__(self, env_name: str) -> None:
        name, backend = parse_name(env_name if is_brax(env_name) else PREFIX + env_name)
        self._brax_name, self._backend = name, backend
        self._env = _brax_env(name, backend)
        self._name = PREFIX + name + (f":{backend}" if backend else "")
        obs = jax.eval_shape(self._env.reset, jax.random.key(0)).obs
        self._obs_shape = tuple(obs.shape)

    @property
    def brax_env(self) -> Any:
        """The wrapped ``brax.envs.Env``."""
        return self._env

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        s = self._env.reset(key)
        return s.obs, EnvState(time=jnp.zeros((), jnp.int32), brax_state=s)

    def step_env(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, dict[str, Any]]:
        del key  # Brax's steps are deterministic
        s = self._env.step(state.brax_state, action)
        new = EnvState(time=state.time + 1, brax_state=s)
        return s.obs, new, s.reward, s.done > 0.5, {}

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return state.brax_state.done > 0.5

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_actions(self) -> int:
        return int(self._env.action_size)

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.num_actions,), jnp.float32)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, self._obs_shape, jnp.float32)


@functools.cache
def _brax_env(name: str, backend: str | None) -> Any:
    """One ``brax.envs`` env per (name, backend): built once, shared by every make()."""
    try:
        # mujoco.mjx prints "Failed to import warp" when importing without NVIDIA Warp.
        with contextlib.redirect_stdout(io.StringIO()):
            import brax.envs
    except ImportError:
        raise ValueError(EXTRA_HINT) from None
    known = sorted(brax.envs._envs)  # brax.envs has no public list of its registry
    if name not in known:
        raise ValueError(f"--env {PREFIX}{name}: unknown Brax env; valid: {', '.join(known)}")
    kwargs = {} if backend is None else {"backend": backend}
    with warnings.catch_warnings():  # "Brax System, pipelines and environments are not ..."
        warnings.filterwarnings("ignore", "Brax System", UserWarning)
        return brax.envs.get_environment(name, **kwargs)


@functools.cache
def _make(env_name: str) -> BraxEnv:
    return BraxEnv(env_name)


def make(env_name: str) -> tuple[BraxEnv, EnvParams]:
    """``(env, env_params)`` of ``brax:NAME[:BACKEND]``, as :func:`gymnax.make` returns.

    The same env object is returned for the same name (so jitted functions that take it as a
    static argument compile once).

    Raises:
      ValueError: one line if Brax is not installed (the ``brax`` extra), the env name is not
        Brax's or the backend is unknown.
    """
    env = _make(env_name)
    return env, env.default_params
