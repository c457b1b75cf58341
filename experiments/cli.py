"""What the experiment scripts' command lines share."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import re
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, NoReturn

_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
_COUNT = re.compile(r"^([+-]?(?:\d[\d_]*)?(?:\.\d*)?(?:e[+-]?\d+)?)([kmg]?)$", re.IGNORECASE)


def count(text: str) -> int:
    """An integer written as ``500000``, ``500_000``, ``5e5``, ``500k`` or ``0.5M``.

    The value must be a whole number (``1.5`` and ``1.2345k`` are refused).
    """
    match = _COUNT.match(text.strip())
    number, suffix = (match.group(1), match.group(2).lower()) if match else ("", "")
    try:
        value = float(number.replace("_", "")) * _SUFFIX[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"invalid count {text!r} (not a whole number)")
    return int(value)


count.__name__ = "int"  # argparse names the type in its messages ("invalid int value")


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's layout and appends each flag's default to its help line
    (unless the help already states it, or the flag has no default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        hidden = default is None or default is False or default == argparse.SUPPRESS
        if "default:" in text or hidden or not action.option_strings:
            return text
        return f"{text} (default: {default})"


class Parser(argparse.ArgumentParser):
    """The scripts' parser: flags are never abbreviated (``--num-seed`` is an error, not
    ``--num-seeds``), an error raises :class:`UsageError` (one line, no usage dump), and
    ``--help`` keeps the description's layout and shows every default."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def hyperparameter(name: str) -> str:
    """A hyperparameter's config name from either spelling: ``ent-coef`` or ``ent_coef``."""
    return name.strip().removeprefix("--").replace("-", "_")


def suggest(value: str, valid: list[str]) -> str:
    """``"; did you mean 'X'?"`` for a near miss (any case), else ``""``."""
    lower = {v.lower(): v for v in valid}
    if value.lower() in lower:
        return f"; did you mean {lower[value.lower()]!r}?"
    close = difflib.get_close_matches(value.lower(), list(lower), n=1, cutoff=0.75)
    return f"; did you mean {lower[close[0]]!r}?" if close else ""


def check_choice(flag: str, value: str, valid: list[str]) -> None:
    """Refuse ``value`` unless it is one of ``valid``: one line, listing them."""
    if value not in valid:
        raise UsageError(
            f"argument {flag}: invalid choice {value!r}{suggest(value, valid)} "
            f"(choose from {', '.join(valid)})"
        )


def _setting(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def preset_text(agent: Any) -> str:
    """Each preset of ``agent`` with what it sets: for ``--help`` and for errors."""
    lines = [f"presets of --agent {agent.name} (--preset NAME; explicit flags override them):"]
    for name, settings in agent.presets.items():
        sets = ", ".join(f"{k}={_setting(v)}" for k, v in settings.items())
        lines.append(
            textwrap.fill(
                sets or "the config's defaults",
                width=96,
                initial_indent=f"  {name:<12} ",
                subsequent_indent=" " * 15,
            )
        )
    return "\n".join(lines)


def check_preset(agent: Any, preset: str) -> None:
    """Refuse an unknown preset, listing the agent's presets."""
    if preset not in agent.presets:
        hint = suggest(preset, list(agent.presets))
        raise UsageError(
            f"--preset {preset!r} is not a preset of {agent.name}{hint}; valid: "
            f"{', '.join(agent.presets)} (--agent {agent.name} --help shows what each sets)"
        )


def add_config_flags(parser: argparse.ArgumentParser, agent: Any, preset: str) -> None:
    """One flag per hyperparameter of ``agent``'s config (``--lr``, ``--gamma``, ...), each
    with its meaning, valid values and default (the preset's value, where it sets one).

    Every flag defaults to None, so the caller can tell which ones were given.
    """
    from rljax.agents import fields

    settings = agent.presets.get(preset, {})
    group = parser.add_argument_group(
        f"--agent {agent.name} hyperparameters (defaults of --preset {preset})"
    )
    for f in dataclasses.fields(agent.config):
        if f.name == "total_steps":
            continue
        default = settings.get(f.name, f.default)
        name = "--" + f.name.replace("_", "-")
        check = f.metadata.get("check")
        kind = str(f.type)
        text = fields.describe(f, _setting(default))
        if kind == "bool":
            group.add_argument(name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif kind == "str" and check is not None and check.choices:
            group.add_argument(name, default=None, choices=list(check.choices), help=text)
        else:
            kinds = {"int": count, "float": float, "str": str}
            group.add_argument(
                name, type=kinds[kind], default=None, metavar=kind.upper(), help=text
            )


def rounded_budget(total_steps: int, steps_per_update: int) -> int:
    """The env steps a budget runs: whole updates only (rounded down)."""
    return total_steps // steps_per_update * steps_per_update


def budget_notice(total_steps: int, steps_per_update: int) -> str | None:
    """One line when ``--total-steps`` is not a whole number of updates, else None."""
    run = rounded_budget(total_steps, steps_per_update)
    if run == total_steps:
        return None
    return (
        f"note: --total-steps {total_steps:,} is not a multiple of the {steps_per_update:,} env "
        f"steps of one update; training {run:,} ({run // steps_per_update:,} updates)"
    )


def warning_lines(prog: str, quiet: bool, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` (building or validating a config), printing each warning it raises as one
    ``PROG: warning: ...`` line on stderr (unless ``quiet``) instead of Python's two-line form."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    for w in caught:
        if not quiet:
            print(f"{prog}: warning: {w.message}", file=sys.stderr)
    return result


COMPILE_CACHE_HELP = (
    "keep compiled programs in DIR (JAX's persistent compilation cache): a later run of the "
    "same config, any --seed, loads them instead of compiling again, with the same results "
    "bit for bit; 'none' turns it off (default: $JAX_COMPILATION_CACHE_DIR if set, else "
    "~/.cache/rljax/jax; off for a run over several processes)"
)


def add_compile_cache_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile-cache", default=None, metavar="DIR", help=COMPILE_CACHE_HELP)


def use_compile_cache(prog: str, value: str | None, multi: bool, quiet: bool) -> Path | None:
    """Turn the persistent compilation cache on or off as ``--compile-cache`` says; the
    directory in use (None: off). An unusable DIR given on the command line is a
    :class:`UsageError`; an unusable default directory only turns the cache off (a notice)."""
    from rljax.run import compile_cache

    if value == "none" or (value is None and multi):
        compile_cache.disable()
        return None
    path = compile_cache.default_dir() if value is None else value
    try:
        return compile_cache.enable(path)
    except compile_cache.CacheDirError as e:
        if value is not None:
            raise UsageError(f"--compile-cache {value}: {e}") from None
        compile_cache.disable()
        if not quiet:
            print(f"{prog}: note: compilation cache off ({e})", file=sys.stderr)
        return None
