"""Roll out one greedy episode and save it as an animated GIF.

Two steps, so that the (jitted) rollout and the (host-side, pygame) drawing stay apart::

    states, rewards = rollout_states(key, act, params, env, env_params)
    save_gif(states, rewards, env, env_params, "policy.gif")

Frames of the classic-control environments (CartPole-v1, Pendulum-v1, Acrobot-v1,
MountainCar-v0, MountainCarContinuous-v0) are drawn by Gymnasium's own ``render_mode="rgb_array"``
renderer fed with our gymnax state, as gymnax's ``Visualizer`` does (``gymnax/visualize/
vis_gym.py``), but with ONE Gymnasium env for the whole episode and frames assembled with
Pillow instead of a matplotlib animation. gymnax's ``Visualizer`` builds a new Gymnasium env (and
re-initialises pygame) for every frame and then encodes through matplotlib: measured on a 2-core
CPU it takes about 0.22 s per CartPole frame (about 110 s for a 500-step episode), against about
3 ms per frame here. Other gymnax environments fall back to gymnax's ``Visualizer``.

Drawing needs the ``viz`` extra (``gymnax[visualize]``, which pulls pygame-ce); without it
:func:`save_gif` raises :class:`RenderUnavailable` with a one-line install hint. Headless
machines work: ``SDL_VIDEODRIVER`` (and ``SDL_AUDIODRIVER``) default to ``dummy`` and
``MPLBACKEND`` to ``Agg`` before pygame or matplotlib is imported.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.types import Params, PRNGKey

VIZ_HINT = 'rendering needs the viz extra: pip install -e ".[viz]"'

# Environments drawn with Gymnasium's classic-control renderers (gymnax vis_gym's list).
_GYM_ENVS = (
    "Acrobot-v1",
    "CartPole-v1",
    "Pendulum-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
)


class RenderUnavailable(RuntimeError):
    """Rendering dependencies (pygame via ``gymnax[visualize]``) are not installed."""


class GifInfo(NamedTuple):
    """What :func:`save_gif` wrote."""

    path: Path
    frames: int  # frames in the GIF
    stride: int  # every ``stride``-th state was drawn (the last state always is)
    frame_ms: int  # display time of one frame, milliseconds


# ------------------------------------------------------------------------------ rollout


@functools.partial(jax.jit, static_argnames=("act", "env", "length"))
def _rollout(key, params, env_params, *, act, env, length):
    reset_key, key = jax.random.split(key)
    obs, state = env.reset(reset_key, env_params)

    def body(carry, step_key):
        state, obs, ended = carry
        act_key, env_key = jax.random.split(step_key)
        action = act(act_key, params, obs[None], True)[0]
        # Exactly env.step's transition (same key split), minus the auto-reset: state_st is the
        # true successor state, which env.step would replace by a reset state at an episode end.
        key_step, _ = jax.random.split(env_key)
        obs_st, state_st, reward, terminated, _ = env.step_env(key_step, state, action, env_params)
        done = jnp.logical_or(terminated, env.is_truncated(state_st, env_params))
        # After the episode ends, freeze the carry (those outputs are discarded anyway).
        keep = lambda old, new: jnp.where(ended, old, new)
        new_carry = (
            jax.tree.map(keep, state, state_st),
            keep(obs, obs_st),
            jnp.logical_or(ended, done),
        )
        return new_carry, (state_st, jnp.asarray(reward, jnp.float32), done)

    init = (state, obs, jnp.zeros((), bool))
    _, (states, rewards, dones) = jax.lax.scan(body, init, jax.random.split(key, length))
    # Number of steps actually played: up to and including the first episode end.
    steps = jnp.where(dones.any(), jnp.argmax(dones) + 1, length)
    return state, states, rewards, steps


def rollout_states(
    key: PRNGKey,
    act: Any,
    params: Params,
    env: Any,
    env_params: Any,
    max_steps: int | None = None,
) -> tuple[list[Any], list[float]]:
    """Play ONE episode with the greedy policy and return every gymnax state it visits.

    The episode runs in a jitted ``lax.scan`` over one environment (``obs`` of shape
    ``obs_shape``; ``act`` is given a batch of one) and stops at its first end (termination or
    the time limit), or after ``max_steps`` steps if that comes first.

    Keys: ``reset_key, key = split(key)``; ``obs, s_0 = env.reset(reset_key, env_params)``; for
    step ``t`` (``step_keys = split(key, length)``): ``act_key, env_key = split(step_keys[t])``,
    ``a_t = act(act_key, params, obs[None], True)[0]``, and the transition is the one
    ``env.step(env_key, s_t, a_t, env_params)`` makes.

    Terminal frame: gymnax auto-resets, so the state ``env.step`` returns at an episode end is
    already the NEXT episode's first state. To show how the episode really ended, each step's
    state is taken from ``env.step_env`` (the same transition before the reset); at the last
    step it is the true terminal state (its observation is ``env.step``'s
    ``info["final_observation"]``).

    Args:
      key: PRNG key.
      act: ``act(key, params, obs[N, ...], greedy) -> action[N, ...]`` (an agent's
        ``make_act(config, spec)``); called with ``greedy=True``. It is a static
        argument of the jitted rollout: pass the same function object to reuse the compilation.
      params: the policy parameters ``act`` takes.
      env: a gymnax environment.
      env_params: its parameters.
      max_steps: stop after this many steps at most (default: ``env_params.max_steps_in_episode``).

    Returns:
      ``(states, rewards)``, Python lists of equal length ``T + 1`` for an episode of ``T`` steps:
      ``states[0]`` is the reset state and ``states[t]`` the state after step ``t`` (host numpy
      leaves); ``rewards[0] = 0.0`` and ``rewards[t]`` is the reward of step ``t``, so
      ``sum(rewards)`` is the episode return and ``cumsum(rewards)[t]`` the return so far at
      ``states[t]``.
    """
    length = int(env_params.max_steps_in_episode) if max_steps is None else int(max_steps)
    if length < 1:
        raise ValueError(f"max_steps must be >= 1; got {max_steps}")
    first, states, rewards, steps = jax.device_get(
        _rollout(key, params, env_params, act=act, env=env, length=length)
    )
    steps = int(steps)
    seq = [first] + [jax.tree.map(lambda x, i=i: x[i], states) for i in range(steps)]
    return seq, [0.0] + [float(r) for r in rewards[:steps]]


# ------------------------------------------------------------------------------ drawing


def _headless() -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("MPLBACKEND", "Agg")


def _require_viz() -> None:
    _headless()
    try:
        import pygame  # noqa: F401
    except ImportError:
        raise RenderUnavailable(VIZ_HINT) from None


def _gym_frames(states: Sequence[Any], env: Any, env_params: Any) -> tuple[list, float]:
    """RGB frames [H, W, 3] drawn by one Gymnasium env; and its real-time frame rate."""
    import gymnasium as gym
    from gymnax.visualize import vis_gym  # imports matplotlib: after _headless()

    gym_env = gym.make(env.name, render_mode="rgb_array")
    try:
        gym_env.reset(seed=0)
        inner: Any = gym_env.unwrapped
        vis_gym.set_gym_params(inner, env.name, env_params)
        frames = []
        for state in states:
            inner.state = vis_gym.get_gym_state(state, env.name)
            if env.name == "Pendulum-v1":
                inner.last_u = np.asarray(state.last_u, dtype=np.float64)
            frames.append(np.asarray(gym_env.render()))
        real_fps = float(inner.metadata.get("render_fps", 30))
    except gym.error.DependencyNotInstalled:
        raise RenderUnavailable(VIZ_HINT) from None
    finally:
        gym_env.close()
    return frames, real_fps


@functools.cache
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _caption(image, text: str):
    """Draw ``text`` top left, black on a light background and white on a dark one."""
    from PIL import ImageDraw

    font = _font(max(12, image.height // 22))
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((8, 6), text, font=font)
    under = np.asarray(image.crop(box).convert("L"), np.float64)
    fill = (0, 0, 0) if under.size == 0 or under.mean() >= 128 else (255, 255, 255)
    draw.text((8, 6), text, fill=fill, font=font)
    return image


def _shared_palette(images: list):
    """One 64-colour palette from the first, middle and last frames (stacked vertically).

    Classic-control frames use a handful of flat colours, so one palette fits every frame;
    quantising against it (no dithering) is much faster and smaller than Pillow's per-frame
    adaptive palettes.
    """
    from PIL import Image

    picks = [images[0], images[len(images) // 2], images[-1]]
    w, h = picks[0].size
    sheet = Image.new("RGB", (w, h * len(picks)))
    for i, im in enumerate(picks):
        sheet.paste(im, (0, i * h))
    return sheet.quantize(colors=64)


def save_gif(
    states: Sequence[Any],
    rewards: Sequence[float],
    env: Any,
    env_params: Any,
    out_path: str | os.PathLike,
    *,
    fps: float | None = None,
    max_frames: int = 300,
    caption: bool = True,
) -> GifInfo:
    """Draw an episode's states into a looping animated GIF.

    Frames are subsampled to at most ``max_frames``: every ``k``-th state with
    ``k = ceil((len(states) - 1) / (max_frames - 1))``, always including the final (terminal)
    state. Each
    frame is captioned with the environment, the step and the return so far
    (``cumsum(rewards)``).

    Args:
      states: gymnax states of one episode, as from :func:`rollout_states` (``states[t]`` after
        step ``t``).
      rewards: per-state rewards of the same length (``rewards[0] = 0``), as from
        :func:`rollout_states`.
      env: the gymnax environment.
      env_params: its parameters (lengths and masses are copied into the renderer).
      out_path: where to write the ``.gif``.
      fps: frames per second of the GIF; default real time (the environment's ``render_fps``
        divided by ``k``). GIF timing has 10 ms resolution and viewers slow frames shorter than
        20 ms, so the frame time is rounded to 10 ms and at least 20 ms.
      max_frames: the most frames to draw (bounds file size and drawing time).
      caption: write "env  step t  return R" on each frame.

    Returns:
      :class:`GifInfo` with the path, the number of frames, the stride ``k`` and the frame time.

    Raises:
      RenderUnavailable: if pygame (the ``viz`` extra) is missing, or for a Brax env.
      ValueError: on an empty episode, mismatched lengths or ``max_frames < 2``.
    """
    if len(states) == 0:
        raise ValueError("states is empty: nothing to render")
    if len(rewards) != len(states):
        raise ValueError(f"rewards ({len(rewards)}) and states ({len(states)}) differ in length")
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2; got {max_frames}")
    if env.name.startswith("brax:"):  # gymnax's Visualizer would draw empty frames
        raise RenderUnavailable(
            f"no GIF renderer for {env.name} (Brax's own renderer needs OpenGL); curves.png "
            "shows how it learned"
        )
    _require_viz()
    out = Path(out_path)
    n = len(states)
    stride = max(1, math.ceil((n - 1) / (max_frames - 1)))
    index = list(range(0, n, stride))
    if index[-1] != n - 1:  # always end on the final state (at most max_frames in all)
        index.append(n - 1)
    chosen = [states[i] for i in index]
    returns = np.cumsum(np.asarray(rewards, dtype=np.float64))

    if env.name.startswith("LunarLander"):  # rljax's JAX LunarLander: drawn here
        frames = [lunar_lander_frame(state) for state in chosen]
        rate = 50.0 / stride if fps is None else float(fps)
        captions = [f"{env.name}   step {t}   return {returns[t]:.1f}" for t in index]
        frame_ms = write_gif(frames, captions if caption else None, rate, out)
        return GifInfo(out, len(frames), stride, frame_ms)

    if env.name not in _GYM_ENVS:  # other gymnax envs: gymnax's (slow) matplotlib Visualizer
        _headless()
        from gymnax.visualize import Visualizer

        Visualizer(env, env_params, chosen, returns[index]).animate(str(out))
        return GifInfo(out, len(index), stride, 100)

    frames, real_fps = _gym_frames(chosen, env, env_params)
    rate = real_fps / stride if fps is None else float(fps)
    captions = [f"{env.name}   step {t}   return {returns[t]:.1f}" for t in index]
    frame_ms = write_gif(frames, captions if caption else None, rate, out)
    return GifInfo(out, len(frames), stride, frame_ms)


def lunar_lander_frame(state: Any) -> np.ndarray:
    """One RGB frame [400, 600, 3] of :mod:`rljax.lunar_lander`'s state, in Gymnasium's
    colours: the black sky over the white moon, the helipad flags, the lander and its legs
    (green while touching the ground), and the flames of the engines the last step fired
    (their length grows with the engine's power)."""
    from PIL import Image, ImageDraw

    from rljax import lunar_lander as ll

    scale, width, height = ll.SCALE, ll.VIEWPORT_W, ll.VIEWPORT_H

    def px(points: np.ndarray) -> list[tuple[float, float]]:
        return [(float(x * scale), float(height - y * scale)) for x, y in np.asarray(points)]

    def body(centre, angle, verts) -> np.ndarray:
        c, s = math.cos(float(angle)), math.sin(float(angle))
        return np.asarray(centre) + np.asarray(verts) @ np.array([[c, s], [-s, c]])

    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    terrain = np.asarray(state.terrain)
    sky = np.concatenate([terrain, [[terrain[-1, 0], ll.H], [terrain[0, 0], ll.H]]])
    draw.polygon(px(sky), fill=(0, 0, 0))
    pos, angle = np.asarray(state.pos), np.asarray(state.angle)
    contact = np.asarray(state.leg_contact)
    for i in (1, 2):
        colour = (0, 200, 0) if contact[i - 1] else (128, 102, 230)
        draw.polygon(px(body(pos[i], angle[i], ll._LEG_V)), fill=colour, outline=(77, 77, 128))
    lander = body(pos[0], angle[0], ll._LANDER_V - ll._LANDER_C)
    main, side = (float(x) for x in np.asarray(state.engines))
    flames = []  # in the lander's frame, the units of rljax.lunar_lander.LANDER_POLY
    if main > 0:
        flames.append([(-6, -10), (6, -10), (0, -10 - 22 * main)])
    if side != 0:
        d = math.copysign(1.0, side)
        flames.append([(17 * d, 2), (17 * d, 10), ((17 + 14 * abs(side)) * d, 6)])
    for flame in flames:
        verts = np.asarray(flame, np.float64) / scale - ll._LANDER_C
        draw.polygon(px(body(pos[0], angle[0], verts)), fill=(255, 140, 0))
    draw.polygon(px(lander), fill=(128, 102, 230), outline=(77, 77, 128))
    mid = ll.CHUNKS // 2
    for x in (terrain[mid - 1, 0], terrain[mid + 1, 0]):
        (bx, by), (tx, ty) = px([[x, ll.HELIPAD_Y], [x, ll.HELIPAD_Y + 50 / scale]])
        draw.line([(bx, by), (tx, ty)], fill=(255, 255, 255), width=2)
        draw.polygon([(tx, ty), (tx, ty + 10), (tx + 25, ty + 5)], fill=(204, 204, 0))
    return np.asarray(image)


def write_gif(
    frames: Sequence[np.ndarray],
    captions: Sequence[str] | None,
    fps: float,
    out_path: str | os.PathLike,
) -> int:
    """Write RGB frames [H, W, 3] as a looping GIF; returns the frame time in milliseconds.

    GIF timing has 10 ms resolution and viewers slow frames shorter than 20 ms, so the frame
    time is ``1000 / fps`` rounded to 10 ms and at least 20 ms; the last frame is held for a
    second. Used for gymnax states (:func:`save_gif`) and for frames Gymnasium rendered itself
    (:mod:`rljax.envs_gymnasium`).
    """
    from PIL import Image

    if not fps > 0:
        raise ValueError(f"fps must be positive; got {fps}")
    frame_ms = max(20, int(round(100.0 / fps)) * 10)
    images = []
    for i, frame in enumerate(frames):
        image = Image.fromarray(np.asarray(frame))
        if captions is not None:
            image = _caption(image, captions[i])
        images.append(image)
    palette = _shared_palette(images)
    images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    # Hold the last (terminal) frame for a second before the loop restarts.
    durations = [frame_ms] * (len(images) - 1) + [max(frame_ms, 1000)]
    images[0].save(
        Path(out_path),
        save_all=True,
        append_images=images[1:],
        duration=durations,
        loop=0,
        optimize=False,
    )
    return frame_ms


__all__ = ["GifInfo", "RenderUnavailable", "rollout_states", "save_gif", "write_gif"]
