"""Train an rljax agent on many seeds at once and write a results folder.

    python experiments/train.py --agent ppo --env CartPole-v1 --num-seeds 64 --seed 0
        --total-steps 5e5 --out results/ppo

Every hyperparameter of the chosen --agent is a flag (--lr, --gamma, ...); `--agent NAME
--help` lists that agent's flags with their meanings, valid values and defaults, and its
presets. --preset NAME starts from a named setting; explicit flags override it. Counts accept
500000, 500_000, 5e5 and 500k. Bad input is rejected with one line naming the flag and exit
status 2, before anything compiles and before any output is written.

Several hosts: run the same command on each, adding --num-processes P --process-id I
--coordinator HOST:PORT (HOST is process 0's host); the seeds are sharded over every
host's devices and only process 0 writes --out. No checkpoints in such a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import shutil
import sys
import zlib
from pathlib import Path
from typing import Any, NamedTuple

# rljax is imported inside the functions: importing it (gymnax) starts JAX's backend, and a
# multi-process run must call jax.distributed.initialize before that.
import cli  # experiments/cli.py, next to this script

PROG = "train.py"


UsageError = cli.UsageError
_Parser = cli.Parser


def _parser(agent_name: str, preset: str = "default") -> argparse.ArgumentParser:
    from rljax import envs, envs_gymnasium
    from rljax.agents import AGENTS

    agent = AGENTS[agent_name]
    p = _Parser(prog=PROG, description=__doc__, epilog=cli.preset_text(agent))
    p.add_argument("--agent", default="a2c", choices=list(AGENTS), help="algorithm")
    p.add_argument(
        "--env",
        default="CartPole-v1",
        help=f"environment: {', '.join(envs.ENVS)}, or gymnasium:ID for a registered Gymnasium "
        "env with a Box observation and a Discrete or Box action space (host bridge), or "
        "brax:NAME[:BACKEND] for a Brax env (the brax extra)",
    )
    p.add_argument(
        "--vector-mode",
        default="sync",
        choices=list(envs_gymnasium.MODES),
        help="gymnasium:ID envs only: SyncVectorEnv or AsyncVectorEnv (a process per env)",
    )
    p.add_argument(
        "--running-threshold",
        type=float,
        nargs="+",
        default=None,
        metavar="R",
        help="also report when each seed's running reward (EMA 0.05 of episode returns, the "
        "Keras tutorial's) first passes each of these values (the env's solved threshold is "
        "always reported)",
    )
    p.add_argument(
        "--preset",
        default="default",
        metavar="NAME",
        help=f"named hyperparameter setting of --agent: {', '.join(agent.presets)} (what each "
        "sets: at the end)",
    )
    p.add_argument("--num-seeds", type=cli.count, default=64, help="runs trained at once")
    p.add_argument(
        "--seed", type=cli.count, default=0, help="root seed; run i uses fold_in(key(seed), i)"
    )
    p.add_argument(
        "--total-steps",
        type=cli.count,
        default=None,
        help="env steps per seed, rounded down to whole updates (default: the preset's, else "
        f"the agent's: {agent.presets[preset].get('total_steps', agent.config.total_steps):,})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default: results/AGENT_ENV_seedSEED)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument(
        "--stop-when-solved",
        action="store_true",
        help="end training after the first chunk at which every seed's last 100 training "
        "episodes average at least the env's solved threshold (summary.json records where)",
    )
    p.add_argument(
        "--num-chunks", type=cli.count, default=50, help="logging points (jitted chunks)"
    )
    p.add_argument(
        "--eval-episodes", type=cli.count, default=100, help="evaluation episodes per seed"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--checkpoint-every", type=cli.count, default=10, help="chunks between checkpoints"
    )
    p.add_argument("--resume", type=Path, default=None, help="continue the run in this folder")
    p.add_argument(
        "--tensorboard", action="store_true", help="log to DIR/tensorboard (track extra)"
    )
    p.add_argument(
        "--wandb", action="store_true", help="log to W&B, offline by default (track extra)"
    )
    p.add_argument(
        "--devices",
        default=None,
        help="devices to shard the seeds over: a number, 'all' or 'auto' (the default: the "
        "most devices that divide --num-seeds; on CPU one device per core, at most 8; with "
        "several processes, all of them)",
    )
    p.add_argument(
        "--seed-block",
        default="auto",
        metavar="N",
        help="on each device, train its seeds in vmapped blocks of N: a number, 'none' (one "
        "vmap over all of them) or 'auto' (64 on CPU, where larger vmaps slow down; none on "
        "GPU/TPU)",
    )
    p.add_argument(
        "--num-processes",
        type=cli.count,
        default=1,
        metavar="P",
        help="processes (hosts) running this run together",
    )
    p.add_argument(
        "--process-id", type=cli.count, default=0, metavar="I", help="this process: 0..P-1"
    )
    p.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="process 0's host and a free port, the same on every process",
    )
    cli.add_compile_cache_flag(p)
    cli.add_config_flags(p, agent, preset)
    return p


def parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    from rljax.agents import AGENTS

    pre = _Parser(prog=PROG, add_help=False)
    pre.add_argument("--agent", default="a2c")
    pre.add_argument("--preset", default="default")
    known, _ = pre.parse_known_args(argv)
    cli.check_choice("--agent", known.agent, list(AGENTS))
    cli.check_preset(AGENTS[known.agent], known.preset)
    args = _parser(known.agent, known.preset).parse_args(argv)
    fields = {f.name for f in dataclasses.fields(AGENTS[args.agent].config)}
    overrides = {
        k: v for k, v in vars(args).items() if k in fields and k != "total_steps" and v is not None
    }
    if args.total_steps is not None:
        overrides["total_steps"] = args.total_steps
    return args, overrides


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an --out that holds something else (or another run, unless --overwrite)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not (out / "config.json").exists():
        raise UsageError(f"--out {out} exists and is not an rljax results folder; choose another")
    if not overwrite:
        raise UsageError(
            f"--out {out} already holds a run; pass --overwrite to replace it or choose another"
        )


RUN_FLAGS = (
    "agent",
    "env",
    "num_seeds",
    "seed",
    "preset",
    "num_chunks",
    "eval_episodes",
    "stop_when_solved",
)


def _given(argv: list[str]) -> set[str]:
    """Names of the options the user typed (``--num-seeds 3`` -> ``num_seeds``)."""
    names = set()
    for a in argv:
        if a.startswith("--"):
            name = a[2:].split("=", 1)[0]
            names.add(name.removeprefix("no-").replace("-", "_"))
    return names


def resume_args(args: argparse.Namespace, argv: list[str]) -> tuple[argparse.Namespace, dict]:
    """The saved run's settings; any flag given that disagrees with them is an error."""
    from rljax.agents import AGENTS
    from rljax.io import checkpoint
    from rljax.run import results

    d = args.resume
    if not (d / "config.json").is_file():
        raise UsageError(f"--resume {d}: no rljax run there (config.json missing)")
    if checkpoint.latest_step(d / "checkpoints") is None:
        raise UsageError(f"--resume {d}: the run has no checkpoint to resume from")
    try:
        saved = json.loads((d / "config.json").read_text())
    except json.JSONDecodeError:
        raise UsageError(f"--resume {d}: config.json is not valid JSON") from None
    given = _given(argv)
    for name in RUN_FLAGS:
        if name in given and getattr(args, name) != saved.get(name):
            raise UsageError(
                f"--resume {d}: the run there has --{name.replace('_', '-')} {saved.get(name)}; "
                f"got {getattr(args, name)}"
            )
    asked = saved.get("requested_total_steps", saved["total_steps"])
    if "total_steps" in given and args.total_steps not in (asked, saved["total_steps"]):
        raise UsageError(
            f"--resume {d}: the run there has --total-steps {asked}; got {args.total_steps}"
        )
    if saved.get("agent") not in AGENTS:
        raise UsageError(f"--resume {d}: unknown agent {saved.get('agent')!r} in config.json")
    fields = {f.name for f in dataclasses.fields(AGENTS[saved["agent"]].config)}
    for name in given & fields:
        if saved["agent"] != args.agent or getattr(args, name) != saved["config"].get(name):
            raise UsageError(
                f"--resume {d}: the run there has --{name.replace('_', '-')} "
                f"{saved['config'].get(name)}; got {getattr(args, name)}"
            )
    saved_major = str(saved.get("versions", {}).get("rljax", "0")).split(".")[0]
    if saved_major != results.versions()["rljax"].split(".")[0]:
        raise UsageError(
            f"--resume {d}: written by rljax {saved['versions'].get('rljax')}, "
            f"incompatible with {results.versions()['rljax']}"
        )
    for name in RUN_FLAGS:
        setattr(args, name, saved.get(name, getattr(args, name)))
    args.out = d
    return args, {k: v for k, v in saved["config"].items() if k in fields}


def parse_seed_block(value: str) -> int | str | None:
    """``--seed-block``: "auto", "none" or a positive number."""
    if value in ("auto", "none"):
        return None if value == "none" else value
    try:
        block = int(value)
    except ValueError:
        block = 0
    if block < 1:
        raise UsageError(f"--seed-block must be a positive number, 'none' or 'auto', got {value!r}")
    return block


def parse_processes(argv: list[str]) -> argparse.Namespace:
    """The multi-process flags, checked before JAX starts (the full parser repeats them)."""
    pre = _Parser(prog=PROG, add_help=False)
    pre.add_argument("--num-processes", type=cli.count, default=1)
    pre.add_argument("--process-id", type=cli.count, default=0)
    pre.add_argument("--coordinator", default=None)
    args, _ = pre.parse_known_args(argv)
    given = _given(argv)
    p = args.num_processes
    if p < 1:
        raise UsageError(f"--num-processes must be an integer >= 1, got {p}")
    if not 0 <= args.process_id < p:
        raise UsageError(
            f"--process-id must be in 0..{p - 1} for --num-processes {p}, got {args.process_id}"
        )
    if args.coordinator is not None:
        host, sep, port = args.coordinator.rpartition(":")
        if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
            raise UsageError(f"--coordinator must be HOST:PORT, got {args.coordinator!r}")
    if p > 1 and args.coordinator is None:
        raise UsageError(f"--num-processes {p} needs --coordinator HOST:PORT (process 0's host)")
    for flag in ("resume", "checkpoint_every"):
        if p > 1 and flag in given:
            raise UsageError(
                f"--{flag.replace('_', '-')} is not supported with --num-processes > 1 "
                "(checkpoints are single-process only)"
            )
    return args


def init_processes(coordinator: str, num_processes: int, process_id: int) -> None:
    """Join a multi-process run: ``jax.distributed.initialize``, before rljax is imported.

    Afterwards ``jax.devices()`` lists every process's devices; on CPU the processes exchange
    data with gloo (TCP).
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)


NOT_RUN_FLAGS = (
    "process_id",
    "out",
    "overwrite",
    "quiet",
    "tensorboard",
    "wandb",
    "compile_cache",
)


def fingerprint(args: argparse.Namespace) -> int:
    """A 31-bit hash of the settings every process of a run must share."""
    settings = {k: v for k, v in vars(args).items() if k not in NOT_RUN_FLAGS}
    return zlib.crc32(json.dumps(settings, sort_keys=True, default=str).encode()) & 0x7FFFFFFF


def agree(error: str | None, settings: int) -> str | None:
    """Every process's verdict on the command line (a collective): the error to report, if any.

    Process 0 alone checks ``--out``, and a process started with other settings would compute
    another run, so all processes exit together when any of them rejects the run.
    """
    import numpy as np
    from jax.experimental import multihost_utils

    mine = np.array([error is not None, settings], dtype=np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    if error is not None:
        return error
    rejected = np.flatnonzero(every[:, 0])
    if rejected.size:
        return f"process {rejected[0]} rejected the run (see its error)"
    if (every[:, 1] != settings).any():
        return "the processes were started with different settings; only --process-id may differ"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        procs = parse_processes(argv)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    multi = procs.num_processes > 1
    from rljax.run import xla_cpu

    # Before JAX starts its backend: one JAX device per CPU core (one per process if several).
    xla_cpu.configure_script(1 if multi else "auto")
    if multi:
        init_processes(procs.coordinator, procs.num_processes, procs.process_id)
    from rljax.agents import ConfigError

    error = run = None
    try:
        run = checked_run(argv, multi)
    except (UsageError, ConfigError) as e:
        error = str(e)
    if multi:
        error = agree(error, 0 if error else fingerprint(run.args))
    if error is not None:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return train(run, multi)


class Run(NamedTuple):
    """A checked command: everything :func:`train` needs."""

    args: argparse.Namespace
    agent: Any
    config: Any
    out: Path
    primary: bool  # this process writes --out
    bridged: bool  # a Gymnasium env on the host
    steps_per_update: int  # env steps of one update (per seed)


def checked_run(argv: list[str], multi: bool) -> Run:
    """Parse and check everything before anything compiles or is written (one-line errors)."""
    from rljax.agents import AGENTS
    from rljax.agents.base import check_positive_int
    from rljax.io import trackers
    from rljax.run import experiment, parallel

    args, overrides = parse(argv)
    if args.resume is not None:
        args, overrides = resume_args(args, argv)
    for name in ("num_seeds", "checkpoint_every", "num_chunks", "eval_episodes"):
        check_positive_int(name, getattr(args, name))
    args.devices = parallel.parse_devices(
        args.devices or ("all" if multi else "auto"), args.num_seeds
    )
    args.seed_block = parse_seed_block(args.seed_block)
    for r in args.running_threshold or ():
        if not math.isfinite(r):
            raise UsageError(f"--running-threshold {r}: must be a finite number")
    if multi:
        check_processes(args)
    parallel.check_devices(args.devices, args.num_seeds)
    bridged = check_env(args, multi)
    agent = AGENTS[args.agent]
    spec = experiment.env_spec(args.env)
    if args.stop_when_solved and spec.solved_threshold is None:
        raise UsageError(f"--stop-when-solved: {args.env} has no solved threshold")
    config = cli.warning_lines(
        PROG, args.quiet, experiment.build_config, agent, args.preset, overrides, spec
    )
    out = args.out or Path("results") / f"{args.agent}_{args.env}_seed{args.seed}"
    primary = parallel.is_primary()  # only process 0 writes --out
    if args.resume is None and primary:
        check_out(out, args.overwrite)
    for flag, module in (("tensorboard", "tensorboardX"), ("wandb", "wandb")):
        if getattr(args, flag) and importlib.util.find_spec(module) is None:
            raise UsageError(f"--{flag} {trackers.TRACK_HINT}")
    args.compile_cache = cli.use_compile_cache(PROG, args.compile_cache, multi, args.quiet)
    return Run(args, agent, config, out, primary, bridged, config.steps_per_update(spec))


def check_processes(args: argparse.Namespace) -> None:
    """A multi-process run uses every process's devices, and they divide the seeds."""
    from rljax.run import parallel

    have = parallel.available_devices()
    if args.devices != have:
        raise UsageError(
            f"--devices {args.devices}: a run over {args.num_processes} processes uses "
            f"all their {have} devices (--devices all)"
        )
    if args.num_seeds % have:
        raise UsageError(
            f"--num-seeds {args.num_seeds} is not divisible by the {have} devices of "
            f"the {args.num_processes} processes"
        )


def check_env(args: argparse.Namespace, multi: bool) -> bool:
    """Whether ``--env`` is a Gymnasium env; refuses what that family cannot do."""
    from rljax import envs, envs_gymnasium

    if envs_gymnasium.is_bridged(args.env):
        if multi:
            raise UsageError(
                f"--num-processes > 1 is not supported for Gymnasium envs ({args.env})"
            )
        if args.resume is not None:
            raise UsageError(f"--resume is not supported for Gymnasium envs ({args.env})")
        return True
    if args.env.startswith("brax:"):  # Brax through a gymnax adapter (the brax extra)
        try:
            envs.make(args.env)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return False
    if args.env not in envs.ENVS:
        raise UsageError(
            f"argument --env: invalid choice {args.env!r}{cli.suggest(args.env, list(envs.ENVS))} "
            f"(choose from {', '.join(envs.ENVS)}, gymnasium:ID or brax:NAME)"
        )
    return False


def prepare_out(run: Run, multi: bool) -> dict[str, Any]:
    """Clear an --overwrite'n folder's results, write config.json; the run's description."""
    from rljax.run import results

    args, out = run.args, run.out
    if run.primary and args.resume is None and out.exists() and args.overwrite:
        for name in [*results.RESULT_FILES, "checkpoints"]:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    if run.primary:
        out.mkdir(parents=True, exist_ok=True)
    info = {
        "agent": args.agent,
        "env": args.env,
        "num_seeds": args.num_seeds,
        "seed": args.seed,
        "total_steps": cli.rounded_budget(run.config.total_steps, run.steps_per_update),
        "requested_total_steps": run.config.total_steps,
        "preset": args.preset,
        "eval_episodes": args.eval_episodes,
        "num_chunks": args.num_chunks,
        "stop_when_solved": args.stop_when_solved,
        "config": results.config_dict(run.config),
        "versions": results.versions(),
        **({"vector_mode": args.vector_mode} if run.bridged else {}),
        **({"num_processes": args.num_processes} if multi else {}),
    }
    if args.resume is None and run.primary:
        results.write_json(out / "config.json", info)
    return info


def train(run: Run, multi: bool) -> int:
    """Train, evaluate and write the results folder; the exit status."""
    from rljax.io import trackers
    from rljax.io.checkpoint import CheckpointError
    from rljax.run import compile_cache, experiment, results

    args, out = run.args, run.out
    cache_counts = compile_cache.counts()
    notice = cli.budget_notice(run.config.total_steps, run.steps_per_update)
    if notice and run.primary and args.resume is None:
        print(f"{PROG}: {notice}", file=sys.stderr)
    info = prepare_out(run, multi)
    tracking = None
    if run.primary and (args.tensorboard or args.wandb):
        tracking = trackers.Trackers(out, info, args.tensorboard, args.wandb)
    try:
        result = experiment.train_and_evaluate(
            run.agent,
            run.config,
            args.env,
            args.num_seeds,
            args.seed,
            out,
            num_chunks=args.num_chunks,
            eval_episodes=args.eval_episodes,
            quiet=args.quiet,
            checkpoint_every=None if multi else args.checkpoint_every,
            devices=args.devices,
            seed_block=args.seed_block,
            resume=args.resume is not None,
            vector_mode=args.vector_mode,
            running_thresholds=tuple(args.running_threshold or ()),
            extra_summary={"preset": args.preset},
            trackers=tracking,
            stop_when_solved=args.stop_when_solved,
        )
    except results.NonFiniteError as e:
        kept = "" if multi else f"; the last good checkpoint is in {out / 'checkpoints'}"
        print(f"{PROG}: stopped: {e}{kept}", file=sys.stderr)
        return 1
    except CheckpointError as e:
        print(f"{PROG}: error: --resume {out}: {e}", file=sys.stderr)
        return 2
    finally:
        if tracking is not None:
            tracking.close()
    if not run.primary:
        print(f"{PROG}: process {args.process_id} done; process 0 writes the results")
        return 0
    result.summary["compile_cache"] = compile_cache.stats(args.compile_cache, cache_counts)
    results.write_json(out / "summary.json", result.summary)
    s = result.summary
    solved = "" if s["solved_count"] is None else f", solved {s['solved_count']}/{s['num_seeds']}"
    if s["stopped_when_solved"]:
        solved += f" (every seed's training window solved: stopped at {s['total_steps']:,} steps)"
    print(
        f"{args.agent} on {args.env}: {s['num_seeds']} seeds x {s['total_steps']:,} steps in "
        f"{s['wall_time_s']:.1f}s (compile {s['compile_time_s']:.1f}s){solved}; "
        f"greedy mean {sum(s['eval_returns']) / len(s['eval_returns']):.1f}; results in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
