"""Re-render a trained policy from a run's newest checkpoint as an animated GIF.

    python experiments/render.py results/a2c_CartPole-v1              # the median seed
    python experiments/render.py results/a2c_CartPole-v1 --run 3 --out run3.gif

The state is restored into a target built by code (``jax.eval_shape`` of the agent's
``init``), then run ``--run`` (default: the seed whose ``episode.gif`` the run wrote, the median
by greedy evaluation return) plays one greedy episode from its own render stream
(:func:`rljax.run.loop.streams`): for the run's final checkpoint, the episode of its GIF.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cli  # experiments/cli.py, next to this script

PROG = "render.py"


def main(argv: list[str] | None = None) -> int:
    p = cli.Parser(prog=PROG, description=__doc__)
    p.add_argument("run_dir", type=Path, help="a results folder written by train.py")
    p.add_argument("--run", type=cli.count, default=None, help="which seed (default: the median)")
    p.add_argument("--out", type=Path, default=None, help="GIF path (default: DIR/episode.gif)")
    try:
        args = p.parse_args(argv)
    except cli.UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    from rljax.io import checkpoint

    d = args.run_dir
    try:
        cfg = json.loads((d / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        print(
            f"{PROG}: error: {d} is not an rljax results folder (no config.json)", file=sys.stderr
        )
        return 2
    if checkpoint.latest_step(d / "checkpoints") is None:
        print(f"{PROG}: error: {d} has no checkpoint to render from", file=sys.stderr)
        return 2
    num_seeds = cfg["num_seeds"]
    if args.run is not None and not 0 <= args.run < num_seeds:
        print(
            f"{PROG}: error: --run must be in [0, {num_seeds - 1}], got {args.run}", file=sys.stderr
        )
        return 2

    import jax
    import numpy as np

    from rljax import envs
    from rljax.agents import AGENTS
    from rljax.io import render
    from rljax.run import experiment, loop, results

    agent = AGENTS[cfg["agent"]]
    env, env_params = envs.make(cfg["env"])
    config = agent.config(**cfg["config"])
    keys = experiment.run_keys(cfg["seed"], num_seeds)
    spec = envs.spec(env, env_params)
    init = jax.vmap(loop.init_fn(agent, config, spec, env, env_params))
    mngr = checkpoint.manager(d / "checkpoints")
    try:
        state, _ = checkpoint.restore(mngr, mngr.latest_step(), jax.eval_shape(init, keys))
    except checkpoint.CheckpointError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    finally:
        mngr.close()
    run = args.run
    if run is None:
        summary = d / "summary.json"
        saved = json.loads(summary.read_text()) if summary.exists() else {}
        if "median_seed" in saved:  # the seed whose episode.gif the run wrote
            run = int(saved["median_seed"])
        elif "eval_returns" in saved:
            run = results.median_seed(np.asarray(saved["eval_returns"]))
        else:
            run = 0
    params = jax.tree.map(lambda x: x[run], agent.params(state.agent))
    act = agent.make_act(config, spec)
    key = loop.streams(keys[run]).render  # the run's own GIF stream
    states, rewards = render.rollout_states(key, act, params, env, env_params)
    out = args.out or d / "episode.gif"
    try:
        info = render.save_gif(states, rewards, env, env_params, out)
    except render.RenderUnavailable as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(
        f"run {run}: {len(states) - 1} steps, return {sum(rewards):.1f}, {info.frames} frames "
        f"-> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
