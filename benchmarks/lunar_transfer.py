"""Policies trained only in rljax's JAX LunarLander, evaluated in Gymnasium's (Box2D).

    python experiments/train.py --agent ppo --env LunarLander-v3 --preset lunarlander \\
        --num-seeds 8 --out results/ppo_jax_lunar_8
    python benchmarks/lunar_transfer.py results/ppo_jax_lunar_8 --out benchmarks/lunar_transfer.json

Restores the run's newest checkpoint (a target built by code, as ``experiments/render.py``
does), then plays each seed's greedy policy for ``--episodes`` episodes in Gymnasium's
``LunarLander-v3`` through the host bridge (``rljax.envs_gymnasium.evaluate``; env seeds
apart from training's). Writes each seed's mean return in both envs (the JAX one from the
run's ``summary.json``) and how many reach 200 in each. Needs the ``gymnasium`` extra (Box2D).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder", type=Path, help="a results folder of a JAX LunarLander run")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", type=Path, default=Path("benchmarks/lunar_transfer.json"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "examples"))
    from act_from_checkpoint import restore

    from rljax import envs_gymnasium

    agent, config, _, _, spec, state, run = restore(args.folder)
    if run["env"] not in ("LunarLander-v3", "LunarLanderContinuous-v3"):
        p.error(f"{args.folder} is a run on {run['env']}, not on the JAX LunarLander")
    params = agent.params(state.agent)
    act = agent.make_act(config, spec)
    seeds = [10_000 + i for i in range(run["num_seeds"])]
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(run["seed"]), i))(
        np.arange(run["num_seeds"])
    )
    gym = envs_gymnasium.evaluate(act, params, run["env"], seeds, args.episodes, key=keys)
    summary = json.loads((args.folder / "summary.json").read_text())
    jax_returns = summary["eval_returns"]
    gym_returns = [round(float(x), 2) for x in gym.mean(1)]
    result = {
        "run": str(args.folder),
        "agent": run["agent"],
        "env": run["env"],
        "total_steps": summary["total_steps"],
        "episodes_per_seed": {"jax": summary["eval_episodes"], "gymnasium": args.episodes},
        "per_seed": [
            {"seed": i, "jax": j, "gymnasium": g}
            for i, (j, g) in enumerate(zip(jax_returns, gym_returns, strict=True))
        ],
        "at_least_200": {
            "jax": int(sum(x >= 200 for x in jax_returns)),
            "gymnasium": int(sum(x >= 200 for x in gym_returns)),
            "of": run["num_seeds"],
        },
        "wall_time_s_of_the_run": summary["wall_time_s"],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["at_least_200"]), json.dumps(result["per_seed"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
