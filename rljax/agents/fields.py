"""Agent configs: frozen fields that declare their valid range, and the checks run on them.

A config is a ``flax.struct.dataclass``: loop and shape fields are static (:func:`static`,
changing one recompiles), float hyperparameters are pytree leaves (:func:`leaf`, so a sweep
vmaps over them). Each field carries its check; :func:`check_fields` runs them and raises
:class:`ConfigError` naming the CLI flag.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from flax import struct

from rljax import envs


class ConfigError(ValueError):
    """A configuration value is out of range. The message names the CLI flag."""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{flag(name)} must be an integer >= 1, got {value!r}")


def check_float(
    name: str,
    value: float,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Finite and within [low, high] (open ends where asked)."""
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        lo = ("(" if low_open else "[") + (str(low) if math.isfinite(low) else "-inf")
        hi = (str(high) if math.isfinite(high) else "inf") + (")" if high_open else "]")
        raise ConfigError(f"{flag(name)} must be finite and in {lo}, {hi}, got {value!r}")


def check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(
            f"{flag(name)} must be one of {', '.join(map(str, choices))}, got {value!r}"
        )


# Declarative config fields: each carries its check in its metadata; check_fields runs them.
Check = Callable[[str, Any], None]
POSITIVE: Check = check_positive_int
PROBABILITY: Check = lambda name, v: check_float(name, v, 0.0, 1.0)  # noqa: E731
NON_NEGATIVE: Check = lambda name, v: check_float(name, v, 0.0)  # noqa: E731
POSITIVE_FLOAT: Check = lambda name, v: check_float(name, v, 0.0, low_open=True)  # noqa: E731
FINITE: Check = lambda name, v: check_float(name, v)  # noqa: E731


def interval(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """A check: finite and in the interval (open ends where asked)."""
    return lambda name, v: check_float(name, v, low, high, low_open=low_open, high_open=high_open)


def one_of(*choices: Any) -> Check:
    """A check: one of ``choices``."""
    return lambda name, v: check_choice(name, v, choices)


def static(default: Any, check: Check | None = None) -> Any:
    """A loop or shape field of a frozen config (static under jit: changing it recompiles)."""
    return struct.field(pytree_node=False, default=default, metadata={"check": check})


def leaf(default: float, check: Check | None = None) -> Any:
    """A float hyperparameter (a pytree leaf: a sweep vmaps over it in one compile)."""
    return struct.field(pytree_node=True, default=default, metadata={"check": check})


def check_fields(config: Any) -> None:
    """Run every field's declared check, in field order (the first bad field raises)."""
    for f in dataclasses.fields(config):
        check = f.metadata.get("check")
        if check is not None:
            check(f.name, getattr(config, f.name))


def num_updates(total_steps: int, steps_per_update: int) -> int:
    """Updates that fit in a per-seed budget; rejects a budget too small for one."""
    check_positive_int("total_steps", total_steps)
    if total_steps < steps_per_update:
        raise ConfigError(
            f"--total-steps {total_steps} is too small for one update "
            f"(one update takes {steps_per_update} env steps)"
        )
    return total_steps // steps_per_update


def require_discrete(spec: envs.EnvSpec, agent: str) -> None:
    if not spec.discrete:
        raise ConfigError(
            f"--agent {agent} needs a discrete action space; {spec.name} has continuous actions"
        )


def require_continuous(spec: envs.EnvSpec, agent: str) -> None:
    if spec.discrete:
        raise ConfigError(
            f"--agent {agent} needs a continuous action space; {spec.name} has discrete actions"
        )


@struct.dataclass
class Normalization:
    """The fields every agent config starts with: observation normalisation and reward
    scaling (static booleans; :mod:`rljax.agents.normalize` implements them)."""

    normalize_obs: bool = static(False, one_of(True, False))  # running mean/var of inputs
    scale_rewards: bool = static(False, one_of(True, False))  # learning sees r / std(return)


class DiscreteStepsConfig(Normalization):
    """The ``validate`` and ``steps_per_update`` of a discrete-action agent's config that
    plays ``num_steps`` steps in each of ``num_envs`` environments per update.

    A base class of ``@struct.dataclass`` configs; it declares no fields. The config has the
    fields ``total_steps``, ``num_envs`` and ``num_steps``, and the class attribute
    ``agent_name`` (not a field: the ``--agent`` name used in messages). A config that
    collects otherwise overrides ``steps_per_update``; ``validate`` uses the override.
    """

    def validate(self, spec: envs.EnvSpec) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        require_discrete(spec, self.agent_name)
        check_fields(self)
        num_updates(self.total_steps, self.steps_per_update(spec))

    def steps_per_update(self, spec: envs.EnvSpec) -> int:
        """Env steps simulated per update (per seed)."""
        del spec
        return self.num_envs * self.num_steps
