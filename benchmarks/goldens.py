"""Golden results: every agent on its envs at short budgets, for refactors that must keep them.

For each case (agent, preset, env, budget) this trains 2 seeds through the experiment runner
(no checkpoints, no visuals, one device), and records the greedy and sampled evaluation returns
and a SHA-256 of the final parameters (every leaf's bytes, in a fixed order). A refactor that
claims to change no results runs ``--check`` against the recorded file: every number and hash
must be bitwise equal (on the same machine kind and library versions).

Usage:
  python benchmarks/goldens.py --out benchmarks/goldens.json
  python benchmarks/goldens.py --check benchmarks/goldens.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

# (agent, preset, env, overrides): short budgets, every agent and env family it trains on.
CASES = [
    ("a2c", "default", "CartPole-v1", {"total_steps": 4096}),
    ("a2c", "keras", "CartPole-v1", {"total_steps": 5000}),
    ("reinforce", "default", "CartPole-v1", {"total_steps": 8000}),
    ("td_actor_critic", "default", "CartPole-v1", {"total_steps": 4000}),
    ("ppo", "default", "CartPole-v1", {"total_steps": 4096}),
    ("ppo", "pendulum", "Pendulum-v1", {"total_steps": 8192}),
    ("ddpg", "default", "Pendulum-v1", {"total_steps": 3000}),
    ("td3", "default", "Pendulum-v1", {"total_steps": 3000}),
    ("a2c", "default", "gymnasium:CartPole-v1", {"total_steps": 2048}),
    ("a2c", "keras", "gymnasium:CartPole-v1", {"total_steps": 2500}),
    ("ppo", "default", "gymnasium:CartPole-v1", {"total_steps": 2048}),
    ("ddpg", "default", "gymnasium:Pendulum-v1", {"total_steps": 1500}),
    ("td3", "default", "gymnasium:Pendulum-v1", {"total_steps": 1500}),
]
NUM_SEEDS = 2
EVAL_EPISODES = 4


def param_hash(tree) -> str:
    import jax
    import numpy as np

    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def named_params(state) -> dict:
    """The learnable parameters of a final agent state, by name."""
    names = ("params", "actor_params", "critic_params")
    state = getattr(state, "agent", state)  # the runner's carry holds the agent's state
    fields = getattr(state, "_fields", ())
    return {n: getattr(state, n) for n in names if n in fields}


def run_case(agent_name, preset, env_name, overrides, out):
    from rljax.agents import AGENTS
    from rljax.run import experiment

    agent = AGENTS[agent_name]
    spec = experiment.env_spec(env_name)
    config = experiment.build_config(agent, preset, overrides, spec)
    kw = dict(num_chunks=2, eval_episodes=EVAL_EPISODES, quiet=True, visuals=False)
    kw.update(checkpoint_every=None, devices=1)
    result = experiment.train_and_evaluate(agent, config, env_name, NUM_SEEDS, 0, out, **kw)
    s = result.summary
    return {
        "eval_returns": s["eval_returns"],
        "eval_returns_sampled": s["eval_returns_sampled"],
        "params_sha256": {k: param_hash(v) for k, v in named_params(result.state).items()},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", type=Path)
    g.add_argument("--check", type=Path)
    p.add_argument("--only", default="", help="with --check: only cases whose name contains this")
    args = p.parse_args(argv)
    from rljax.run import xla_cpu

    xla_cpu.configure_script(1)  # as the scripts do, before JAX starts
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (agent, preset, env, over) in enumerate(CASES):
            name = f"{agent}/{preset}/{env}"
            if args.check and args.only not in name:
                continue
            results[name] = run_case(agent, preset, env, over, Path(tmp) / str(i))
            print(name, results[name]["eval_returns"], flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        return 0
    want = {k: v for k, v in json.loads(args.check.read_text()).items() if k in results}
    for k, w in want.items():  # the parameters the golden hashed (by state field name)
        got = results.get(k, {}).get("params_sha256", {})
        results.get(k, {})["params_sha256"] = {n: got.get(n) for n in w["params_sha256"]}
    bad = [k for k in want if results.get(k) != want[k]]
    for k in bad:
        print(f"DIFFERS: {k}\n  want {want[k]}\n  got  {results.get(k)}", file=sys.stderr)
    print(f"{len(want) - len(bad)}/{len(want)} goldens bitwise equal")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
