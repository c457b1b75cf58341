"""rljax on Brax envs (``--env brax:NAME``) against Brax's own trainers, same budget.

    python -m venv .venv-brax
    .venv-brax/bin/pip install -c constraints.txt -e ".[dev,brax]"
    .venv-brax/bin/python benchmarks/bench_brax.py [--cases ppo_idp sac_ip] [--seeds 8] \\
        [--sides rljax brax]

Two cases, each run by both sides, each side in its own interpreter, one after the other:

* ``ppo_idp``: PPO on ``inverted_double_pendulum``; 16 envs x 64 steps per update (1024 env
  steps), 4 epochs x 4 minibatches of 256, lr 3e-4 constant, gamma 0.99, GAE lambda 0.95,
  clip 0.2, entropy 0.01, value coefficient 0.5, max grad norm 0.5, 2x64 tanh networks.
* ``sac_ip``: SAC on ``inverted_pendulum``; 1 env, batch 256, one gradient step per env step,
  lr 3e-3, gamma 0.99, tau 0.02, 1000 warm-up steps, buffer 20k, 2x64 ReLU networks,
  target entropy −0.5·|A| (Brax's SAC fixes it there; rljax's default is −|A|).

rljax runs ``experiments/train.py`` (all seeds at once, vmapped; its summary.json gives the
greedy returns, compile, training and evaluation times). Brax runs
``brax.training.agents.{ppo,sac}.train`` once per seed (Brax trains one seed per call) with
``num_evals=2`` (an evaluation before and after training) and ``deterministic_eval=True``;
its returns are the final evaluation's ``eval/episode_reward`` and its time is the whole call
(compile included: Brax does not report compile time apart). Both evaluate ``--episodes``
episodes of at most 1000 steps. Differences that remain: Brax's policies are tanh-squashed
Gaussians with a learned scalar std (rljax PPO: a Gaussian clipped to [-1, 1]; rljax SAC: tanh
Gaussian too), Brax's envs come wrapped in its EpisodeWrapper/AutoResetWrapper (rljax: the
gymnax adapter of rljax.envs_brax), and Brax's SAC uses one learning rate for actor, critics
and temperature (here all 3e-3 on both sides).

Brax 0.14.2's trainers call ``jax.device_put_replicated``, which jax 0.10 removed (brax's
environments themselves run unchanged); this benchmark puts back an equivalent
(:func:`_device_put_replicated`, benchmark code only) so Brax's trainers run on the same jax.

Results go to ``benchmarks/brax_comparison.json``. Times depend on the machine and on what
else runs on it; the JSON records the CPU count and the load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EPISODE_LENGTH = 1000

CASES = {
    "ppo_idp": dict(
        agent="ppo",
        env="inverted_double_pendulum",
        total_steps=512_000,
        rljax_flags=(  # flags of experiments/train.py
            "--num-envs 16 --num-steps 64 --num-epochs 4 --num-minibatches 4 --lr 3e-4 "
            "--no-anneal-lr --gamma 0.99 --gae-lambda 0.95 --clip-eps 0.2 --ent-coef 0.01 "
            "--vf-coef 0.5 --max-grad-norm 0.5 --hidden-size 64 --num-layers 2 "
            "--activation tanh"
        ),
    ),
    "sac_ip": dict(
        agent="sac",
        env="inverted_pendulum",
        total_steps=20_000,
        rljax_flags=(
            "--num-envs 1 --batch-size 256 --lr 3e-3 --critic-lr 3e-3 --alpha-lr 3e-3 "
            "--gamma 0.99 --tau 0.02 --learning-starts 1000 --buffer-size 20000 "
            "--hidden-size 64 --num-layers 2 --target-entropy-ratio 0.5"
        ),
    ),
}

NOTES = [
    "rljax trains all seeds at once (one vmapped program, compiled once); Brax trains one seed "
    "per train() call, each compiling again: compare rljax's process_wall_time_s with Brax's "
    "wall_time_s_all_seeds",
    "Brax's wall time includes compilation and its two evaluations; rljax reports compile, "
    "train and eval times apart",
    "returns: greedy (deterministic) policy, mean over eval_episodes episodes of <= 1000 steps",
    "Brax 0.14.2's trainers call jax.device_put_replicated, removed in jax 0.10: the benchmark "
    "puts back an equivalent for Brax's side only (_device_put_replicated)",
    "Brax's policies are tanh-squashed Gaussians with a learned scalar std; rljax's PPO policy "
    "is a Gaussian clipped to [-1, 1]; Brax's SAC uses one learning rate for everything",
]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _spread(returns: list[float]) -> dict:
    """IQM of the per-seed returns with its 95% bootstrap CI (rljax.stats; no CI below
    rljax.stats.MIN_SEEDS_FOR_CI seeds), computed the same way for both sides."""
    from rljax import stats

    agg = stats.across_seeds(returns)
    ci = agg["iqm_ci"] and [round(c, 2) for c in agg["iqm_ci"]]
    return {"iqm": round(agg["iqm"], 2), "iqm_ci": ci}


def run_rljax(name: str, seeds: int, episodes: int) -> dict:
    case = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [
            sys.executable, str(ROOT / "experiments" / "train.py"),
            "--agent", case["agent"], "--env", f"brax:{case['env']}",
            "--num-seeds", str(seeds), "--seed", "0",
            "--total-steps", str(case["total_steps"]), "--eval-episodes", str(episodes),
            "--compile-cache", "none",  # compile times are measured
            "--num-chunks", "4", "--checkpoint-every", "1000", "--quiet", "--out", str(out),
            *case["rljax_flags"].split(),
        ]  # fmt: skip
        load = _load()
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode:
            raise RuntimeError(f"rljax failed: {proc.stderr[-2000:]}")
        s = json.loads((out / "summary.json").read_text())
    return {
        "load_average_before": load,
        "returns": s["eval_returns"],
        "returns_sampled": s["eval_returns_sampled"],
        "mean_return": round(sum(s["eval_returns"]) / seeds, 2),
        **_spread(s["eval_returns"]),
        "total_steps_per_seed": s["total_steps"],
        "compile_time_s": s["compile_time_s"],
        "train_time_s": s["train_time_s"],
        "eval_time_s": s["eval_time_s"],
        "process_wall_time_s": round(wall, 2),
        "train_steps_per_second_all_seeds": s["steps_per_second"],
        "command": " ".join(
            [
                "python",
                "experiments/train.py",
                *cmd[2 : -len(case["rljax_flags"].split()) - 2],
                case["rljax_flags"],
            ]
        ),
    }


def _device_put_replicated(x, devices):
    """What ``jax.device_put_replicated`` did (removed in jax 0.10; Brax 0.14.2 still calls it):
    every leaf stacked once per device, the stack sharded over the devices (pmap's input)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    sharding = NamedSharding(Mesh(np.array(devices), ("d",)), PartitionSpec("d"))
    stack = lambda a: jax.device_put(jnp.stack([jnp.asarray(a)] * len(devices)), sharding)  # noqa: E731
    return jax.tree.map(stack, x)


def brax_one_seed(name: str, seed: int, episodes: int) -> dict:
    """One Brax training run (in this interpreter); its final greedy return and time."""
    import functools

    import jax
    from brax import envs

    jax.device_put_replicated = _device_put_replicated  # benchmark-only shim (see docstring)

    case = CASES[name]
    env = envs.get_environment(case["env"])
    common = dict(
        environment=env,
        num_timesteps=case["total_steps"],
        episode_length=EPISODE_LENGTH,
        seed=seed,
        num_evals=2,
        num_eval_envs=episodes,
        deterministic_eval=True,
    )
    t = time.perf_counter()
    if case["agent"] == "ppo":
        from brax.training.agents.ppo import networks, train

        factory = functools.partial(
            networks.make_ppo_networks,
            policy_hidden_layer_sizes=(64, 64),
            value_hidden_layer_sizes=(64, 64),
            activation=jax.nn.tanh,
        )
        _, _, metrics = train.train(
            **common,
            num_envs=16,
            unroll_length=64,
            batch_size=4,  # 4 x 4 minibatches x 64 steps = 1024 env steps per update
            num_minibatches=4,
            num_updates_per_batch=4,
            learning_rate=3e-4,
            entropy_cost=0.01,
            discounting=0.99,
            gae_lambda=0.95,
            clipping_epsilon=0.2,
            vf_loss_coefficient=0.5,
            max_grad_norm=0.5,
            network_factory=factory,
        )
    else:
        from brax.training.agents.sac import networks, train

        factory = functools.partial(networks.make_sac_networks, hidden_layer_sizes=(64, 64))
        _, _, metrics = train.train(
            **common,
            num_envs=1,
            batch_size=256,
            learning_rate=3e-3,
            discounting=0.99,
            tau=0.02,
            min_replay_size=1000,
            max_replay_size=20_000,
            grad_updates_per_step=1,
            network_factory=factory,
        )
    wall = time.perf_counter() - t
    return {
        "return": round(float(metrics["eval/episode_reward"]), 4),
        "wall_time_s": round(wall, 2),
        "training_sps": round(float(metrics.get("training/sps", float("nan"))), 1),
    }


def run_brax(name: str, seeds: int, episodes: int) -> dict:
    per_seed = []
    for seed in range(seeds):
        load = _load()
        t = time.perf_counter()
        cmd = [sys.executable, __file__, "--brax-seed", name, str(seed), str(episodes)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"brax failed: {proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r.update(load_average_before=load, process_wall_time_s=round(time.perf_counter() - t, 2))
        per_seed.append(r)
    returns = [r["return"] for r in per_seed]
    return {
        "returns": returns,
        "mean_return": round(sum(returns) / seeds, 2),
        **_spread(returns),
        "total_steps_per_seed": CASES[name]["total_steps"],
        "wall_time_s_per_seed": [r["wall_time_s"] for r in per_seed],
        "wall_time_s_all_seeds": round(sum(r["wall_time_s"] for r in per_seed), 2),
        "per_seed": per_seed,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--episodes", type=int, default=16, help="evaluation episodes per seed")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "brax_comparison.json")
    p.add_argument(
        "--sides",
        nargs="+",
        default=["rljax", "brax"],
        choices=["rljax", "brax"],
        help="rerun only these sides; the other side's stored entry is kept",
    )
    p.add_argument("--brax-seed", nargs=3, help=argparse.SUPPRESS)  # internal: one Brax run
    args = p.parse_args()
    if args.brax_seed:
        name, seed, episodes = args.brax_seed
        print(json.dumps(brax_one_seed(name, int(seed), int(episodes))))
        return
    import brax
    import jax

    result = {
        "description": __doc__.split("\n\n")[0],
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "backend": "cpu",
            "note": "load_average_before (per run) says how busy the machine was",
        },
        "versions": {"jax": jax.__version__, "brax": brax.__version__},
        "notes": NOTES,
        "seeds": args.seeds,
        "eval_episodes": args.episodes,
        "cases": {},
    }
    if args.out.exists():  # keep the cases not rerun
        result["cases"] = json.loads(args.out.read_text()).get("cases", {})
    for name in args.cases:
        case = CASES[name]
        stored = result["cases"].get(name, {})
        entry = result["cases"][name] = {
            "agent": case["agent"],
            "env": case["env"],
            "total_steps_per_seed": case["total_steps"],
            **{side: stored[side] for side in ("rljax", "brax") if side in stored},
        }
        for side, run in (("rljax", run_rljax), ("brax", run_brax)):
            if side in args.sides:
                print(f"{name}: {side} ...", file=sys.stderr, flush=True)
                entry[side] = run(name, args.seeds, args.episodes)
                print(f"{name}: {side} {entry[side]['mean_return']}", file=sys.stderr)
                args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
