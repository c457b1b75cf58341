"""Train an rljax agent on many seeds at once and write a results folder.

    python experiments/train.py --agent a2c --env CartPole-v1 --num-seeds 64 --seed 0 \
        --total-steps 500000 --out results/a2c

Every agent hyperparameter is a flag (``--lr``, ``--gamma``, ...; ``--help`` lists them for the
chosen ``--agent``). ``--preset NAME`` starts from a named setting; explicit flags override it.
Bad input is rejected with one line naming the flag and exit status 2, before anything
compiles and before any output is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

from rljax import envs, envs_gymnasium
from rljax.agents import AGENTS, ConfigError
from rljax.agents.common import check_positive_int
from rljax.io import experiment, trackers
from rljax.io.checkpoint import CheckpointError

PROG = "train.py"


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UsageError(message)


def _flag_type(annotation: str):
    return {"int": int, "float": float, "str": str, "bool": bool}[annotation]


def _parser(agent_name: str | None) -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agent", default="a2c", choices=list(AGENTS), help="algorithm")
    p.add_argument(
        "--env",
        default="CartPole-v1",
        help=f"environment: {', '.join(envs.ENVS)}, or gymnasium:ID for a registered Gymnasium "
        "env with a Box observation and a Discrete or Box action space (host bridge)",
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
        default=None,
        help="gymnasium:ID envs only: also report when each seed's running reward (EMA 0.05 "
        "of episode returns, the Keras tutorial's) first passes this value",
    )
    p.add_argument("--preset", default="default", help="named hyperparameter setting")
    p.add_argument("--num-seeds", type=int, default=64, help="runs trained at once")
    p.add_argument(
        "--seed", type=int, default=0, help="root seed; run i uses fold_in(key(seed), i)"
    )
    p.add_argument("--total-steps", type=int, default=None, help="env steps per seed")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--num-chunks", type=int, default=50, help="logging points (jitted chunks)")
    p.add_argument("--eval-episodes", type=int, default=100, help="evaluation episodes per seed")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--checkpoint-every", type=int, default=10, help="chunks between checkpoints")
    p.add_argument("--resume", type=Path, default=None, help="continue the run in this folder")
    p.add_argument(
        "--tensorboard", action="store_true", help="log to DIR/tensorboard (track extra)"
    )
    p.add_argument(
        "--wandb", action="store_true", help="log to W&B, offline by default (track extra)"
    )
    p.add_argument(
        "--devices", default="1", help="devices to shard the seeds over: a number or 'all'"
    )
    if agent_name in AGENTS:
        group = p.add_argument_group(f"{agent_name} hyperparameters")
        for f in dataclasses.fields(AGENTS[agent_name].config):
            if f.name == "total_steps":
                continue
            name = "--" + f.name.replace("_", "-")
            kind = _flag_type(str(f.type))
            if kind is bool:
                group.add_argument(name, action=argparse.BooleanOptionalAction, default=None)
            else:
                group.add_argument(name, type=kind, default=None, metavar=kind.__name__.upper())
    return p


def parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    pre = _Parser(prog=PROG, add_help=False)
    pre.add_argument("--agent", default="a2c")
    known, _ = pre.parse_known_args(argv)
    if known.agent not in AGENTS:
        raise UsageError(
            f"argument --agent: invalid choice {known.agent!r}; valid: {', '.join(AGENTS)}"
        )
    args = _parser(known.agent).parse_args(argv)
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


RUN_FLAGS = ("agent", "env", "num_seeds", "seed", "preset", "num_chunks", "eval_episodes")


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
    import json

    from rljax.io import checkpoint

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
    if "total_steps" in given and args.total_steps != saved["total_steps"]:
        raise UsageError(
            f"--resume {d}: the run there has --total-steps {saved['total_steps']}; "
            f"got {args.total_steps}"
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
    if saved_major != experiment.versions()["rljax"].split(".")[0]:
        raise UsageError(
            f"--resume {d}: written by rljax {saved['versions'].get('rljax')}, "
            f"incompatible with {experiment.versions()['rljax']}"
        )
    for name in RUN_FLAGS:
        setattr(args, name, saved[name])
    args.out = d
    return args, {k: v for k, v in saved["config"].items() if k in fields}


def parse_devices(value: str) -> int:
    if value == "all":
        return experiment.available_devices()
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--devices must be a number or 'all', got {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, overrides = parse(argv)
        if args.resume is not None:
            args, overrides = resume_args(args, argv)
        check_positive_int("num_seeds", args.num_seeds)
        check_positive_int("checkpoint_every", args.checkpoint_every)
        args.devices = parse_devices(args.devices)
        experiment.check_devices(args.devices, args.num_seeds)
        check_positive_int("num_chunks", args.num_chunks)
        check_positive_int("eval_episodes", args.eval_episodes)
        agent = AGENTS[args.agent]
        bridged = envs_gymnasium.is_bridged(args.env)
        if bridged:
            from rljax.io import bridged as bridged_runner

            if args.resume is not None:
                raise UsageError(f"--resume is not supported for Gymnasium envs ({args.env})")
            bridged_runner.check_agent(args.agent, args.env)
            spec = envs_gymnasium.spec(args.env)
        else:
            if args.env not in envs.ENVS:
                raise UsageError(
                    f"argument --env: invalid choice: {args.env!r} "
                    f"(choose from {', '.join(envs.ENVS)}, or gymnasium:ID)"
                )
            env, env_params = envs.make(args.env)
            spec = envs.spec(env, env_params)
        config = experiment.build_config(agent, args.preset, overrides, spec)
        out = args.out or Path("results") / f"{args.agent}_{args.env}_seed{args.seed}"
        if args.resume is None:
            check_out(out, args.overwrite)
        for flag, module in (("tensorboard", "tensorboardX"), ("wandb", "wandb")):
            if getattr(args, flag) and importlib.util.find_spec(module) is None:
                raise UsageError(f"--{flag} {trackers.TRACK_HINT}")
    except (UsageError, ConfigError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    if args.resume is None and out.exists() and args.overwrite:
        for name in [*experiment.RESULT_FILES, "checkpoints"]:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    run_info = {
        "agent": args.agent,
        "env": args.env,
        "num_seeds": args.num_seeds,
        "seed": args.seed,
        "total_steps": config.total_steps,
        "preset": args.preset,
        "eval_episodes": args.eval_episodes,
        "num_chunks": args.num_chunks,
        "config": experiment.config_dict(config),
        "versions": experiment.versions(),
    }
    if bridged:
        run_info["vector_mode"] = args.vector_mode
    if args.resume is None:
        experiment.write_json(out / "config.json", run_info)
    tracking = None
    if args.tensorboard or args.wandb:
        tracking = trackers.Trackers(out, run_info, args.tensorboard, args.wandb)
    try:
        if bridged:
            result = bridged_runner.train_and_evaluate(
                agent,
                config,
                args.env,
                args.num_seeds,
                args.seed,
                out,
                num_chunks=args.num_chunks,
                eval_episodes=args.eval_episodes,
                quiet=args.quiet,
                vector_mode=args.vector_mode,
                running_thresholds=()
                if args.running_threshold is None
                else (args.running_threshold,),
                extra_summary={"preset": args.preset},
            )
        else:
            result = experiment.train_and_evaluate(
                agent,
                config,
                args.env,
                args.num_seeds,
                args.seed,
                out,
                num_chunks=args.num_chunks,
                eval_episodes=args.eval_episodes,
                quiet=args.quiet,
                checkpoint_every=args.checkpoint_every,
                devices=args.devices,
                resume=args.resume is not None,
                extra_summary={"preset": args.preset},
                trackers=tracking,
            )
    except experiment.NonFiniteError as e:
        print(
            f"{PROG}: stopped: {e}; the last good checkpoint is in {out / 'checkpoints'}",
            file=sys.stderr,
        )
        return 1
    except CheckpointError as e:
        print(f"{PROG}: error: --resume {out}: {e}", file=sys.stderr)
        return 2
    finally:
        if tracking is not None:
            tracking.close()
    experiment.write_json(out / "summary.json", result.summary)
    s = result.summary
    solved = "" if s["solved_count"] is None else f", solved {s['solved_count']}/{s['num_seeds']}"
    print(
        f"{args.agent} on {args.env}: {s['num_seeds']} seeds x {s['total_steps']:,} steps in "
        f"{s['wall_time_s']:.1f}s (compile {s['compile_time_s']:.1f}s){solved}; "
        f"greedy mean {sum(s['eval_returns']) / len(s['eval_returns']):.1f}; results in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
