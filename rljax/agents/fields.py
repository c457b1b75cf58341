"""Agent configs: frozen fields that declare their valid range, and the checks run on them.

A config is a ``flax.struct.dataclass``: loop and shape fields are static (:func:`static`,
changing one recompiles), float hyperparameters are pytree leaves (:func:`leaf`, so a sweep
vmaps over them). Each field carries its check; :func:`check_fields` runs them and raises
:class:`ConfigError` naming the CLI flag.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

from flax import struct

from rljax import envs
from rljax.agents.meanings import MEANINGS
from rljax.networks import ACTIVATIONS


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


# Declarative config fields: each carries its check (which can describe itself, for --help)
# and a one-line meaning in its metadata; check_fields runs the checks.


@dataclasses.dataclass(frozen=True)
class Check:
    """A field's check: ``check(name, value)`` raises :class:`ConfigError` naming the flag.

    Attributes:
      fn: the check itself.
      text: the valid values in words (``"in [0, 1]"``), shown by ``--help``.
      choices: the valid values, where they are a short list.
    """

    fn: Callable[[str, Any], None]
    text: str
    choices: tuple | None = None

    def __call__(self, name: str, value: Any) -> None:
        self.fn(name, value)


def _interval_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high):
        return f"{'>' if low_open else '>='} {low:g}" if math.isfinite(low) else "finite"
    lo = ("(" if low_open else "[") + (f"{low:g}" if math.isfinite(low) else "-inf")
    return f"in {lo}, {high:g}{')' if high_open else ']'}"


def interval(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """A check: finite and in the interval (open ends where asked)."""
    return Check(
        lambda name, v: check_float(name, v, low, high, low_open=low_open, high_open=high_open),
        _interval_text(low, high, low_open, high_open),
    )


def one_of(*choices: Any) -> Check:
    """A check: one of ``choices``."""
    return Check(
        lambda name, v: check_choice(name, v, choices), ", ".join(map(str, choices)), choices
    )


POSITIVE = Check(check_positive_int, "an integer >= 1")
PROBABILITY = interval(0.0, 1.0)
NON_NEGATIVE = interval(0.0, math.inf)
POSITIVE_FLOAT = interval(0.0, math.inf, low_open=True)
FINITE = interval(-math.inf, math.inf)
BOOLEAN = one_of(True, False)


def meaning(f: dataclasses.Field) -> str:
    """The one-line meaning of a config field (its own ``help``, else the shared one)."""
    return f.metadata.get("help") or MEANINGS.get(f.name, "")


def describe(f: dataclasses.Field, default: Any) -> str:
    """``--help`` text of a config field: meaning, valid values and default."""
    check = f.metadata.get("check")
    valid = "" if check is None or check.choices is not None else f"; {check.text}"
    return f"{meaning(f)}{valid} (default: {default})"


def static(default: Any, check: Check | None = None, help: str = "") -> Any:
    """A loop or shape field of a frozen config (static under jit: changing it recompiles)."""
    return struct.field(pytree_node=False, default=default, metadata={"check": check, "help": help})


def leaf(default: float, check: Check | None = None, help: str = "") -> Any:
    """A float hyperparameter (a pytree leaf: a sweep vmaps over it in one compile)."""
    return struct.field(pytree_node=True, default=default, metadata={"check": check, "help": help})


def check_fields(config: Any, spec: envs.EnvSpec | None = None) -> None:
    """Run every field's declared check, in field order (the first bad field raises); with
    the env's ``spec``, also :func:`check_discount`."""
    for f in dataclasses.fields(config):
        check = f.metadata.get("check")
        if check is not None:
            check(f.name, getattr(config, f.name))
    if spec is not None:
        check_discount(config, spec)


class DiscountWarning(UserWarning):
    """γ = 1 with bootstrapping at a time limit: the values have no finite fixed point."""


def check_discount(config: Any, spec: envs.EnvSpec) -> None:
    """Warn (:class:`DiscountWarning`) when γ = 1 meets bootstrapping at the env's time limit.

    Every agent here bootstraps from V(s_T) when an episode is cut by the time limit (vanilla
    REINFORCE, without a baseline, does not). With γ = 1 the value of an episode that never
    ends is unbounded, so the bootstrapped targets grow without limit. Envs without a time
    limit (``spec.max_steps`` 0) are not concerned.
    """
    bootstraps = getattr(config, "baseline", True)
    if spec.max_steps and bootstraps and float(getattr(config, "gamma", 0.0)) == 1.0:
        warnings.warn(
            f"--gamma 1 with bootstrapping at {spec.name}'s time limit ({spec.max_steps} steps) "
            "has no finite value fixed point (values grow without bound); use --gamma < 1",
            DiscountWarning,
            stacklevel=2,
        )


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

    normalize_obs: bool = static(False, BOOLEAN)
    scale_rewards: bool = static(False, BOOLEAN)


@struct.dataclass
class RolloutConfig(Normalization):
    """The fields of an agent that plays ``num_steps`` steps in each of ``num_envs``
    environments per update with MLP networks, and its ``steps_per_update``.

    The defaults are A2C's (except its budget); an agent's config redeclares a field to change
    its default or its meaning (the field keeps its place in the order).
    """

    total_steps: int = static(500_000, POSITIVE)
    num_envs: int = static(8, POSITIVE)
    num_steps: int = static(8, POSITIVE, help="env steps per env per update")
    hidden_size: int = static(64, POSITIVE)
    num_layers: int = static(2, POSITIVE)
    activation: str = static("tanh", one_of(*ACTIVATIONS))
    anneal_lr: bool = static(True, BOOLEAN)
    gamma: float = leaf(0.99, PROBABILITY)

    def steps_per_update(self, spec: envs.EnvSpec) -> int:
        """Env steps simulated per update (per seed)."""
        del spec
        return self.num_envs * self.num_steps


@struct.dataclass
class DiscreteStepsConfig(RolloutConfig):
    """The ``validate`` of a discrete-action :class:`RolloutConfig`.

    The config has the class attribute ``agent_name`` (not a field: the ``--agent`` name used
    in messages). A config that collects otherwise overrides ``steps_per_update``;
    ``validate`` uses the override.
    """

    def validate(self, spec: envs.EnvSpec) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        require_discrete(spec, self.agent_name)
        check_fields(self, spec)
        num_updates(self.total_steps, self.steps_per_update(spec))
