"""Gymnasium environments through a host bridge: envs stepped on the host, the policy jitted.

gymnax has no LunarLander (nor any Box2D or MuJoCo environment). This bridge lets rljax's
agents train, with the same losses and return functions, on any registered Gymnasium
environment with a ``Box`` observation space and a ``Discrete`` or ``Box`` action space. The
transitions it records mean exactly what the gymnax path's do (docs/conventions.md):

* Vector envs auto-reset in ``AutoresetMode.SAME_STEP``: at an episode end the returned
  observation is already the next episode's first one and ``info["final_obs"][i]`` is the real
  last one, so ``Transition.next_obs`` is the final observation there, as gymnax's
  ``info["final_observation"]``.
* ``terminated`` and ``truncated`` stay apart (Gymnasium's ``TimeLimit`` sets ``truncated``).
* Episode returns and lengths come from our own running sums and are reported only at the
  step an episode ends (0 elsewhere), as :func:`rljax.envs.step` does.

Seeds run as separate vector envs (one :class:`HostEnvs` holds S of them); every step of a
rollout is ONE jitted call of the policy vmapped over seeds (observations stacked [S, N, ...]),
and the rollout comes back as one :class:`~rljax.types.Transition` with leading axes [S, T, N],
ready for a jitted, seed-vmapped learning step.

Environments are named ``gymnasium:ID`` on the command line (``gymnasium:LunarLander-v3``).
Box2D environments need the ``gymnasium`` extra; without it :func:`make_env` raises a
:class:`~rljax.agents.base.ConfigError` whose one line says what to install.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from rljax.agents.base import ConfigError
from rljax.envs import EnvSpec
from rljax.types import Array, Params, PRNGKey, Transition

PREFIX = "gymnasium:"
EXTRA_HINT = 'pip install -e ".[gymnasium]"'
MODES = ("sync", "async")


def is_bridged(env_name: str) -> bool:
    """Whether ``env_name`` names a Gymnasium environment (``gymnasium:ID``)."""
    return env_name.startswith(PREFIX)


def env_id(env_name: str) -> str:
    """The Gymnasium id in ``gymnasium:ID`` (an id without the prefix is returned as is)."""
    return env_name.removeprefix(PREFIX)


def make_env(name: str, **kwargs: Any) -> Any:
    """One Gymnasium env, checked to be one rljax can train on.

    Args:
      name: a registered Gymnasium id, with or without the ``gymnasium:`` prefix.
      **kwargs: passed to ``gymnasium.make`` (e.g. ``max_episode_steps``, ``render_mode``).

    Raises:
      ConfigError: one line if the id is not registered, its dependencies (the ``gymnasium``
        extra) are missing, or its spaces are not a Box observation and a Discrete or Box
        action.
    """
    import gymnasium as gym

    gid = env_id(name)
    if gid not in gym.registry:
        raise ConfigError(
            f"--env {PREFIX}{gid}: not a registered Gymnasium environment "
            "(see gymnasium.pprint_registry())"
        )
    try:
        env = gym.make(gid, **kwargs)
    except gym.error.DependencyNotInstalled:
        raise ConfigError(f"{gid.split('-')[0]} needs the gymnasium extra: {EXTRA_HINT}") from None
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Box):
        env.close()
        raise ConfigError(
            f"--env {PREFIX}{gid}: observation space {type(obs_space).__name__} is not supported "
            "(rljax needs a Box)"
        )
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)) or (
        isinstance(act_space, gym.spaces.Box) and len(act_space.shape) != 1
    ):
        env.close()
        raise ConfigError(
            f"--env {PREFIX}{gid}: action space {act_space} is not supported "
            "(rljax needs Discrete or a 1-d Box)"
        )
    if env.spec is None or env.spec.max_episode_steps is None:
        env.close()
        raise ConfigError(
            f"--env {PREFIX}{gid}: has no time limit (max_episode_steps); rljax needs one"
        )
    return env


def spec(env: Any) -> EnvSpec:
    """Static :class:`~rljax.envs.EnvSpec` of a Gymnasium env, id, or :func:`make_vector` env.

    ``max_steps`` is the env spec's ``max_episode_steps`` (its ``TimeLimit``) and
    ``solved_threshold`` its ``reward_threshold``.
    """
    import gymnasium as gym

    if isinstance(env, gym.vector.VectorEnv):
        return env.rljax_spec  # set by make_vector
    own = isinstance(env, str)
    if own:
        env = make_env(env)
    try:
        obs_space, act_space, env_spec = env.observation_space, env.action_space, env.spec
        if isinstance(act_space, gym.spaces.Discrete):
            discrete, n, low, high = True, int(act_space.n), 0.0, 0.0
        else:
            discrete, n = False, int(act_space.shape[0])
            low, high = float(np.min(act_space.low)), float(np.max(act_space.high))
        threshold = env_spec.reward_threshold
        return EnvSpec(
            name=env_spec.id,
            obs_shape=tuple(obs_space.shape),
            discrete=discrete,
            num_actions=n,
            action_low=low,
            action_high=high,
            max_steps=int(env_spec.max_episode_steps),
            solved_threshold=None if threshold is None else float(threshold),
        )
    finally:
        if own:
            env.close()


def make_vector(name: str, num_envs: int, seed: int, mode: str = "sync", **kwargs: Any) -> Any:
    """``num_envs`` copies of a Gymnasium env in one vector env, auto-resetting on the same step.

    Args:
      name: a registered Gymnasium id (``gymnasium:`` prefix optional).
      num_envs: N.
      seed: sub-env ``i`` is seeded with ``seed + i`` at the first :meth:`HostEnvs.reset`.
      mode: ``"sync"`` (``SyncVectorEnv``, one process) or ``"async"`` (``AsyncVectorEnv``,
        one worker process per env).
      **kwargs: passed to each env's ``gymnasium.make``.
    """
    import gymnasium as gym

    if mode not in MODES:
        raise ConfigError(f"--vector-mode must be one of {', '.join(MODES)}, got {mode!r}")
    one = make_env(name, **kwargs)  # validate once, with a one-line error
    env_spec = spec(one)
    one.close()
    gid = env_id(name)
    fns = [functools.partial(gym.make, gid, **kwargs) for _ in range(num_envs)]
    same_step = gym.vector.AutoresetMode.SAME_STEP
    if mode == "sync":
        vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=same_step)
    else:
        # The platform's default start method ("fork" on Linux): "spawn" and "forkserver"
        # re-import the __main__ script, and so JAX, in every worker (measured: about 40 s per
        # worker on a busy 2-core machine). JAX warns that forking a multithreaded process can
        # deadlock; the workers run only Gymnasium code (never JAX) from the moment they start,
        # so that warning is silenced here, for these forks only.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
            vec = gym.vector.AsyncVectorEnv(fns, autoreset_mode=same_step)
    vec.rljax_seed = int(seed)
    vec.rljax_spec = env_spec
    return vec


class HostEnvs:
    """S seeds' vector envs of N envs each, their current observations and episode sums.

    Host-side and mutable (Gymnasium envs are); everything it returns is a numpy array with
    leading axes [S, N].
    """

    def __init__(self, vec_envs: Sequence[Any]):
        import gymnasium as gym

        if not vec_envs:
            raise ValueError("HostEnvs needs at least one vector env")
        self.vec_envs = list(vec_envs)
        for v in self.vec_envs:
            if v.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
                raise ValueError("vector envs must auto-reset in AutoresetMode.SAME_STEP")
        self.num_seeds = len(self.vec_envs)
        self.num_envs = self.vec_envs[0].num_envs
        space = self.vec_envs[0].single_action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.action_start = int(space.start) if self.discrete else 0
        if not self.discrete:
            self.action_low = np.asarray(space.low, np.float32)
            self.action_high = np.asarray(space.high, np.float32)
        self.obs: np.ndarray | None = None
        self.steps = np.zeros((self.num_seeds,), np.int64)  # env steps taken, per seed
        self._seeded = False

    def reset(self) -> np.ndarray:
        """Reset every env (seeded the first time); returns obs [S, N, *obs_shape]."""
        obs = []
        for v in self.vec_envs:
            seed = None if self._seeded else getattr(v, "rljax_seed", None)
            o, _ = v.reset(seed=seed)
            obs.append(np.asarray(o, np.float32))
        self._seeded = True
        self.obs = np.stack(obs)
        shape = (self.num_seeds, self.num_envs)
        self.episode_return = np.zeros(shape, np.float32)
        self.episode_length = np.zeros(shape, np.int32)
        return self.obs

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """Step every env with ``action`` [S, N, ...].

        Box actions are clipped to the space's bounds before they reach the envs (a Gaussian
        policy's raw sample can fall outside them; the caller keeps the raw one).
        Returns a dict of [S, N, ...] arrays: ``obs`` (the next observations, already reset at
        episode ends), ``reward``, ``terminated``, ``truncated``, ``final_obs`` (the true
        successor of the previous observations: the final observation at episode ends),
        ``episode_return`` and ``episode_length`` (of episodes ended at this step, else 0).
        """
        if self.obs is None:
            self.reset()
        action = np.asarray(action)
        if self.discrete:
            action = action.astype(np.int64) + self.action_start
        else:
            action = np.clip(action, self.action_low, self.action_high)
        out: dict[str, list] = {k: [] for k in ("obs", "reward", "terminated", "truncated")}
        finals = []
        for s, v in enumerate(self.vec_envs):
            obs, reward, terminated, truncated, info = v.step(action[s])
            obs = np.asarray(obs, np.float32)
            final = obs.copy()
            if "_final_obs" in info:
                for i in np.flatnonzero(info["_final_obs"]):
                    final[i] = np.asarray(info["final_obs"][i], np.float32)
            out["obs"].append(obs)
            out["reward"].append(np.asarray(reward, np.float32))
            out["terminated"].append(np.asarray(terminated, bool))
            out["truncated"].append(np.asarray(truncated, bool))
            finals.append(final)
        res = {k: np.stack(v) for k, v in out.items()}
        res["final_obs"] = np.stack(finals)
        done = res["terminated"] | res["truncated"]
        ep_return = self.episode_return + res["reward"]
        ep_length = self.episode_length + 1
        res["episode_return"] = np.where(done, ep_return, 0.0).astype(np.float32)
        res["episode_length"] = np.where(done, ep_length, 0).astype(np.int32)
        self.episode_return = np.where(done, 0.0, ep_return).astype(np.float32)
        self.episode_length = np.where(done, 0, ep_length).astype(np.int32)
        self.obs = res["obs"]
        self.steps += self.num_envs
        return res

    def close(self) -> None:
        for v in self.vec_envs:
            v.close()


# policy(key, params, obs[N, ...]) -> (action[N, ...], log_prob[N]), as in rljax.rollout.
Policy = Callable[[PRNGKey, Params, Array], tuple[Array, Array]]


@functools.partial(jax.jit, static_argnames="policy")
def policy_step(key: PRNGKey, params: Params, obs: Array, *, policy: Policy):
    """One jitted call for all seeds: ``(key[S], action[S, N], log_prob[S, N])``.

    Each seed's key is split into its next key and the key of this step's actions. ``policy``
    is static: pass the same function object every step so it compiles once.
    """

    def one(key, params, obs):
        key, act_key = jax.random.split(key)
        action, log_prob = policy(act_key, params, obs)
        return key, action, log_prob

    return jax.vmap(one)(key, params, obs)


def _transition(steps: list[dict[str, np.ndarray]], obs: list, act: list, logp: list):
    """Stack per-step host records into a Transition with leading axes [S, T, N]."""
    st = lambda xs: np.stack(xs, axis=1)
    return Transition(
        obs=st(obs),
        action=st(act),
        log_prob=st(logp),
        reward=st([s["reward"] for s in steps]),
        terminated=st([s["terminated"] for s in steps]),
        truncated=st([s["truncated"] for s in steps]),
        next_obs=st([s["final_obs"] for s in steps]),
        episode_return=st([s["episode_return"] for s in steps]),
        episode_length=st([s["episode_length"] for s in steps]),
    )


def host_rollout(
    key: PRNGKey, policy: Policy, params: Params, envs: HostEnvs, num_steps: int
) -> tuple[PRNGKey, Transition]:
    """Run ``policy`` for ``num_steps`` steps in every seed's envs, continuing their episodes.

    Args:
      key: one key per seed, [S].
      policy: ``policy(key, params, obs[N]) -> (action[N], log_prob[N])`` for ONE seed; it is
        vmapped over seeds and jitted (see :func:`policy_step`).
      params: the policies' parameters, leading axis [S].
      envs: the S seeds' vector envs (reset on first use).
      num_steps: T.

    Returns:
      ``(key, traj)``: the seeds' next keys and a numpy :class:`~rljax.types.Transition` with
      leading axes [S, T, N]; ``next_obs`` is the final observation at episode ends.
    """
    if envs.obs is None:
        envs.reset()
    steps, obs, act, logp = [], [], [], []
    for _ in range(num_steps):
        o = envs.obs
        key, a, lp = policy_step(key, params, o, policy=policy)
        a, lp = jax.device_get((a, lp))
        steps.append(envs.step(a))
        obs.append(o)
        act.append(a)
        logp.append(lp)
    return key, _transition(steps, obs, act, logp)


def host_episodes(
    key: PRNGKey, policy: Policy, params: Params, envs: HostEnvs, max_steps: int
) -> tuple[PRNGKey, Transition]:
    """Play ONE fresh episode in every env (Monte-Carlo mode), padded to ``max_steps``.

    Every env is reset, then all are stepped until each has ended its first episode (or
    ``max_steps`` steps). Steps after an env's first episode end have ``terminated`` and
    ``truncated`` set False, and steps never played are zero padding (all False), so
    ``rljax.rollout.first_episode_mask(traj.done)`` selects exactly the first episodes, as
    in the gymnax path's Monte-Carlo rollout. ``envs.steps`` counts only the steps played.

    Returns:
      ``(key, traj)`` as :func:`host_rollout`, with T = ``max_steps``.
    """
    envs.reset()
    ended = np.zeros((envs.num_seeds, envs.num_envs), bool)
    steps, obs, act, logp = [], [], [], []
    while len(steps) < max_steps and not ended.all():
        o = envs.obs
        key, a, lp = policy_step(key, params, o, policy=policy)
        a, lp = jax.device_get((a, lp))
        s = envs.step(a)
        for k in ("terminated", "truncated"):
            s[k] = s[k] & ~ended
        ended |= s["terminated"] | s["truncated"]
        steps.append(s)
        obs.append(o)
        act.append(a)
        logp.append(lp)
    pad = max_steps - len(steps)
    if pad:
        zero = lambda x: np.zeros_like(x)
        steps += [{k: zero(v) for k, v in steps[-1].items()}] * pad
        obs += [zero(obs[-1])] * pad
        act += [zero(act[-1])] * pad
        logp += [zero(logp[-1])] * pad
    return key, _transition(steps, obs, act, logp)


def evaluate(
    act: Callable,
    params: Params,
    name: str,
    seeds: Sequence[int],
    num_episodes: int = 100,
    mode: str = "sync",
    greedy: bool = True,
    key: PRNGKey | None = None,
) -> np.ndarray:
    """Returns of ``num_episodes`` complete episodes per seed, each in its own env.

    Args:
      act: ``act(key, params, obs[N], greedy) -> action[N]`` for one seed (vmapped over seeds).
      params: the seeds' parameters, leading axis [S].
      name: the Gymnasium id.
      seeds: S env seeds (separate from training's).
      num_episodes: episodes per seed, played at once in ``num_episodes`` envs.
      mode: the vector env's mode, as :func:`make_vector` takes it.
      greedy: the policy's mode (True) or samples (False).
      key: the seeds' keys, [S]; None: ``jax.random.key(i)`` for seed index i.

    Returns:
      episode returns, [S, num_episodes].
    """
    envs = HostEnvs([make_vector(name, num_episodes, s, mode) for s in seeds])
    try:
        envs.reset()
        if key is None:
            key = jax.vmap(jax.random.key)(np.arange(len(seeds)))
        fn = _act_step(act, greedy)
        total = np.zeros((envs.num_seeds, num_episodes), np.float64)
        alive = np.ones_like(total, bool)
        max_steps = spec(envs.vec_envs[0]).max_steps
        for _ in range(max_steps):
            key, a = fn(key, params, envs.obs)
            s = envs.step(jax.device_get(a))
            total += np.where(alive, s["reward"], 0.0)
            alive &= ~(s["terminated"] | s["truncated"])
            if not alive.any():
                break
        return total
    finally:
        envs.close()


@functools.cache
def _act_step(act: Callable, greedy: bool):
    def one(key, params, obs):
        key, act_key = jax.random.split(key)
        return key, act(act_key, params, obs, greedy)

    return jax.jit(jax.vmap(one))


def episode_frames(
    act: Callable, params: Params, name: str, seed: int, max_frames: int = 300
) -> tuple[list[np.ndarray], list[int], list[float], float, int]:
    """Play ONE greedy episode with ``render_mode="rgb_array"`` and keep some of its frames.

    Args:
      act: ``act(key, params, obs[N], greedy) -> action[N]`` for one seed.
      params: that seed's parameters.
      name: the Gymnasium id.
      seed: the env's reset seed.
      max_frames: the most frames kept: every ``stride``-th step with
        ``stride = ceil(max_episode_steps / (max_frames - 1))``, plus the reset and the last
        (terminal) step.

    Returns:
      ``(frames, steps, returns, fps, stride)``: RGB frames [H, W, 3], the step each shows
      (0 is the reset), the return so far at each, the env's real-time ``render_fps``, stride.
    """
    env = make_env(name, render_mode="rgb_array")
    try:
        max_steps = int(env.spec.max_episode_steps)
        stride = max(1, -(-max_steps // (max_frames - 1)))
        obs, _ = env.reset(seed=seed)
        fn = jax.jit(lambda p, o: act(jax.random.key(0), p, o[None], True)[0])
        discrete = hasattr(env.action_space, "n")
        start = int(env.action_space.start) if discrete else 0
        frames, steps, returns, total = [env.render()], [0], [0.0], 0.0
        for t in range(1, max_steps + 1):
            a = np.asarray(fn(params, np.asarray(obs, np.float32)))
            obs, r, terminated, truncated, _ = env.step(int(a) + start if discrete else a)
            total += float(r)
            end = terminated or truncated
            if t % stride == 0 or end:
                frames.append(env.render())
                steps.append(t)
                returns.append(total)
            if end:
                break
        return frames, steps, returns, float(env.metadata.get("render_fps", 30)), stride
    finally:
        env.close()
