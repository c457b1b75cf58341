"""Restore a trained population from its checkpoint and play one greedy episode with seed i.

What it shows: using a trained policy outside the runner. ``experiments/train.py`` saves the
whole population (every seed's parameters, optimiser states, keys, env states) with orbax
under ``OUT/checkpoints``. A checkpoint is restored into a target built by code: the abstract
shapes (``jax.eval_shape``) of the runner's ``init`` for the run's agent, config and seeds,
as ``experiments/render.py`` does. Seed ``i``'s parameters are then one slice of every leaf,
and the agent's ``make_act(config, spec)`` gives ``act(key, params, obs, greedy)``.

The episode is a plain Python loop over jitted steps (``rljax.envs.reset``/``step`` with one
environment), so it is easy to change: log observations, perturb actions, render frames. By
default it uses seed ``i``'s greedy-evaluation key stream, with the keys that
``rljax.evaluation.evaluate`` gives a one-episode evaluation: for a run trained with
``--eval-episodes 1`` it replays the run's own greedy evaluation, and the return printed here
is ``summary.json["eval_returns"][i]``.

Run it::

    python experiments/train.py --agent a2c --num-seeds 8 --total-steps 100000 --out results/a2c
    python examples/act_from_checkpoint.py results/a2c --run 3

Gymnax runs only (``gymnasium:ID`` runs keep their envs on the host and have no checkpoints).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

from rljax import envs
from rljax.agents import AGENTS
from rljax.io import checkpoint
from rljax.run import experiment, loop


def restore(folder: Path):
    """``(agent, config, env, env_params, spec, state, run_config)`` from a results folder.

    ``state`` is the runner's :class:`rljax.run.loop.Carry` of every seed (leading axis
    [num_seeds]), from the newest checkpoint.
    """
    run = json.loads((folder / "config.json").read_text())
    agent = AGENTS[run["agent"]]
    config = agent.config(**run["config"])
    env, env_params = envs.make(run["env"])
    spec = envs.spec(env, env_params)
    keys = experiment.run_keys(run["seed"], run["num_seeds"])
    init = jax.vmap(loop.init_fn(agent, config, spec, env, env_params))
    with checkpoint.manager(folder / "checkpoints") as mngr:
        step = mngr.latest_step()
        if step is None:
            raise checkpoint.CheckpointError(f"no checkpoint in {folder / 'checkpoints'}")
        state, _ = checkpoint.restore(mngr, step, jax.eval_shape(init, keys))
    return agent, config, env, env_params, spec, state, run


def play_episode(key, act, params, env, env_params) -> tuple[float, int]:
    """One greedy episode in one env: ``(return, steps)``.

    A Python loop over one jitted step (the policy and the env step together). The keys are
    the ones :func:`rljax.evaluation.evaluate` gives a one-episode evaluation.
    """

    @jax.jit
    def step(step_keys, t, params, env_state, obs):
        key_act, key_env = jax.random.split(step_keys[t])
        action = act(key_act, params, obs, True)  # greedy
        obs, env_state, reward, terminated, truncated, _ = envs.step(
            key_env, env, env_params, env_state, action
        )
        return env_state, obs, reward[0], (terminated | truncated)[0]

    reset_key, key = jax.random.split(key)
    env_state, obs = envs.reset(reset_key, env, env_params, 1)  # one env: obs [1, ...]
    step_keys = jax.random.split(key, int(env_params.max_steps_in_episode))
    total, steps, done = 0.0, 0, False
    while not done and steps < len(step_keys):
        env_state, obs, reward, done = step(step_keys, steps, params, env_state, obs)
        total, steps, done = total + float(reward), steps + 1, bool(done)
    return total, steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a results folder written by experiments/train.py")
    p.add_argument("--run", type=int, default=0, help="which seed's policy plays (0-based)")
    p.add_argument("--key", type=int, default=None, help="another episode: key(KEY) instead")
    args = p.parse_args(argv)

    if not (args.folder / "config.json").is_file():
        p.error(f"{args.folder}: no config.json (not a results folder of experiments/train.py)")
    try:
        agent, config, env, env_params, spec, state, run = restore(args.folder)
    except checkpoint.CheckpointError as e:
        p.error(str(e))
    if not 0 <= args.run < run["num_seeds"]:
        p.error(f"--run must be in [0, {run['num_seeds'] - 1}], got {args.run}")

    # Seed i's slice of every leaf, as numpy arrays on the host (like the env's reset state,
    # so the jitted step sees the same kinds of arrays at every call and compiles once).
    params = jax.device_get(jax.tree.map(lambda x: x[args.run], agent.params(state.agent)))
    act = agent.make_act(config, spec)
    if args.key is None:  # seed i's greedy-evaluation stream, as the run evaluated it
        key = loop.streams(experiment.run_keys(run["seed"], run["num_seeds"])[args.run])
        key = key.eval_greedy
    else:
        key = jax.random.key(args.key)
    ret, steps = play_episode(key, act, params, env, env_params)
    print(f"{run['agent']} on {run['env']}, seed {args.run}: return {ret:.1f} in {steps} steps")
    summary = args.folder / "summary.json"
    if summary.is_file() and args.key is None:
        recorded = np.asarray(json.loads(summary.read_text())["eval_returns"])[args.run]
        print(f"the run's greedy evaluation return of seed {args.run}: {recorded:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
