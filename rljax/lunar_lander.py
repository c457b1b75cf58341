"""LunarLander-v3 and LunarLanderContinuous-v3 as JAX (gymnax) environments.

A port of Gymnasium's Box2D LunarLander (``gymnasium.envs.box2d.lunar_lander``; no wind, no
rendering): the same constants, terrain, initial push, engine impulses with their random
dispersion, 8-d observation, reward shaping and termination rules. The Box2D world is replaced
by :mod:`rljax._physics2d`, a compact re-implementation of Box2D's step for the lander's three
bodies and two leg joints. Every random draw comes from the JAX key. Contacts are Box2D's
begin/end events: a leg touches the ground (and the body's touch is a crash) when it is within
the collision skins at the start of a step or at a time of impact during it.

Statistical parity with Gymnasium (random and heuristic policies) is measured by
``benchmarks/lunar_parity.py``.

gymnax 1.0 semantics: ``env.step`` returns ``(obs, state, reward, terminated, truncated,
info)``, auto-resets, and keeps the last observation in ``info["final_observation"]``;
``terminated`` on a crash, leaving the screen or coming to rest, ``truncated`` at
``params.max_steps_in_episode`` (1000) steps.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from rljax import _physics2d as phys
from rljax.types import Array, PRNGKey

FPS = 50
SCALE = 30.0
MAIN_ENGINE_POWER = 13.0
SIDE_ENGINE_POWER = 0.6
INITIAL_RANDOM = 1000.0
LANDER_POLY = [(-14, +17), (-17, 0), (-17, -10), (+17, -10), (+17, 0), (+14, +17)]
LEG_AWAY = 20
LEG_DOWN = 18
LEG_W, LEG_H = 2, 8
LEG_SPRING_TORQUE = 40
SIDE_ENGINE_HEIGHT = 14
SIDE_ENGINE_AWAY = 12
MAIN_ENGINE_Y_LOCATION = 4
VIEWPORT_W = 600
VIEWPORT_H = 400
W = VIEWPORT_W / SCALE
H = VIEWPORT_H / SCALE
CHUNKS = 11
HELIPAD_Y = H / 4
GRAVITY = -10.0

# Bodies: 0 the lander, 1 the leg Gymnasium creates with i = -1 (legs[0]), 2 the one with i = +1.
_LANDER_V = np.array(LANDER_POLY, np.float64) / SCALE
_LANDER_MASS, _LANDER_C, _LANDER_I = phys.polygon_mass(_LANDER_V, 5.0)
_LEG_HX, _LEG_HY = LEG_W / SCALE, LEG_H / SCALE
_LEG_V = np.array(
    [(-_LEG_HX, -_LEG_HY), (_LEG_HX, -_LEG_HY), (_LEG_HX, _LEG_HY), (-_LEG_HX, _LEG_HY)]
)
_LEG_MASS, _, _LEG_I = phys.polygon_mass(_LEG_V, 1.0)
_SIDES = (-1, +1)
MODEL = phys.Model(
    inv_mass=np.array([1 / _LANDER_MASS, 1 / _LEG_MASS, 1 / _LEG_MASS]),
    inv_inertia=np.array([1 / _LANDER_I, 1 / _LEG_I, 1 / _LEG_I]),
    # Box2D mixes friction as sqrt(f1 f2): terrain 0.1, lander 0.1, legs the default 0.2.
    friction=np.array([0.1, math.sqrt(0.02), math.sqrt(0.02)]),
    body_verts=np.stack([_LEG_V, _LEG_V]),
    body_normals=np.stack([phys.polygon_normals(_LEG_V)] * 2),
    root_verts=_LANDER_V - _LANDER_C,
    root_normals=phys.polygon_normals(_LANDER_V),
    anchor_a=np.stack([-_LANDER_C, -_LANDER_C]),
    anchor_b=np.array([(i * LEG_AWAY / SCALE, LEG_DOWN / SCALE) for i in _SIDES]),
    motor_speed=np.array([0.3 * i for i in _SIDES]),
    max_motor_torque=float(LEG_SPRING_TORQUE),
    lower=np.array([0.9 - 0.5, -0.9]),
    upper=np.array([0.9, -0.9 + 0.5]),
)

OBS_HIGH = np.array([2.5, 2.5, 10.0, 10.0, 2 * math.pi, 10.0, 1.0, 1.0], np.float32)
OBS_LOW = np.array([-2.5, -2.5, -10.0, -10.0, -2 * math.pi, -10.0, -0.0, -0.0], np.float32)


@struct.dataclass
class EnvState(environment.EnvState):
    pos: Array  # [3, 2] centres of mass: lander, legs[0], legs[1]
    angle: Array  # [3]
    vel: Array  # [3, 2]
    omega: Array  # [3]
    terrain: Array  # [CHUNKS, 2] the terrain polyline
    sleep_time: Array  # [3] Box2D's per-body sleep timers
    impulses: phys.Impulses  # the solver's warm start
    leg_contact: Array  # [2] bool
    game_over: Array  # bool: the lander body touched the ground
    awake: Array  # bool
    prev_shaping: Array  # float
    engines: Array  # [2] the last step's main and signed side engine power (for drawing)
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    initial_random: float = INITIAL_RANDOM
    main_engine_power: float = MAIN_ENGINE_POWER
    side_engine_power: float = SIDE_ENGINE_POWER
    max_steps_in_episode: int = 1000


def _dispersion(key: PRNGKey) -> Array:
    return jax.random.uniform(key, (2,), jnp.float32, -1.0, 1.0) / SCALE


def terrain_from_heights(height: Array) -> Array:
    """The terrain polyline [CHUNKS, 2] from Gymnasium's ``CHUNKS + 1`` uniform(0, H/2) draws."""
    height = jnp.asarray(height, jnp.float32)
    height = height.at[CHUNKS // 2 - 2 : CHUNKS // 2 + 3].set(HELIPAD_Y)
    # Gymnasium's smooth_y[i] = 0.33 (h[i-1] + h[i] + h[i+1]); h[-1] is h[CHUNKS] (Python).
    smooth = 0.33 * (jnp.roll(height, 1)[:CHUNKS] + height[:CHUNKS] + height[1 : CHUNKS + 1])
    chunk_x = jnp.arange(CHUNKS, dtype=jnp.float32) * (W / (CHUNKS - 1))
    return jnp.stack([chunk_x, smooth], -1)


class LunarLander(environment.Environment[EnvState, EnvParams]):
    """Gymnasium's LunarLander-v3 (``continuous=False``) or its continuous version.

    Args:
      continuous: Box(-1, 1, (2,)) actions (main throttle, side) instead of Discrete(4)
        (noop, left engine, main engine, right engine).
      velocity_iterations: Box2D's velocity solver iterations (Gymnasium: 180).
      position_iterations: Box2D's position solver iterations (Gymnasium: 60).
      num_contacts: contact points kept per body and step.
    """

    def __init__(
        self,
        continuous: bool = False,
        velocity_iterations: int = 6 * 30,
        position_iterations: int = 2 * 30,
        num_contacts: int = 3,
    ):
        super().__init__()
        self.continuous = continuous
        self.velocity_iterations = velocity_iterations
        self.position_iterations = position_iterations
        self.num_contacts = num_contacts
        self.obs_shape = (8,)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    @property
    def name(self) -> str:
        return "LunarLanderContinuous-v3" if self.continuous else "LunarLander-v3"

    @property
    def num_actions(self) -> int:
        return 2 if self.continuous else 4

    def action_space(self, params: EnvParams | None = None) -> Any:
        if self.continuous:
            return spaces.Box(-1.0, 1.0, (2,), jnp.float32)
        return spaces.Discrete(4)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(jnp.asarray(OBS_LOW), jnp.asarray(OBS_HIGH), (8,), jnp.float32)

    # --- dynamics -------------------------------------------------------------------------

    def _engines(self, state: EnvState, action: Array, dispersion: Array, params: EnvParams):
        """Apply the engines' impulses to the lander. Returns ``(vel, omega, m_power, s_power,
        side)``; ``side`` is ``s_power`` signed by the engine that fired (-1: the left one)."""
        angle = state.angle[0]
        tip = jnp.stack([jnp.sin(angle), jnp.cos(angle)])
        side = jnp.stack([-tip[1], tip[0]])
        origin = self._origin(state)
        com = state.pos[0]
        if self.continuous:
            action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
            main_on = action[0] > 0.0
            m_power = jnp.where(main_on, (jnp.clip(action[0], 0.0, 1.0) + 1.0) * 0.5, 0.0)
            side_on = jnp.abs(action[1]) > 0.5
            direction = jnp.sign(action[1])
            s_power = jnp.where(side_on, jnp.clip(jnp.abs(action[1]), 0.5, 1.0), 0.0)
        else:
            action = jnp.asarray(action, jnp.int32)
            m_power = jnp.where(action == 2, 1.0, 0.0)
            side_on = (action == 1) | (action == 3)
            direction = (action - 2).astype(jnp.float32)
            s_power = jnp.where(side_on, 1.0, 0.0)
        inv_m, inv_i = MODEL.inv_mass[0], MODEL.inv_inertia[0]
        vel, omega = state.vel[0], state.omega[0]
        # Main engine.
        d = MAIN_ENGINE_Y_LOCATION / SCALE + 2 * dispersion[0]
        o = jnp.stack([tip[0] * d + side[0] * dispersion[1], -tip[1] * d - side[1] * dispersion[1]])
        impulse = -o * params.main_engine_power * m_power
        r = origin + o - com
        vel = vel + inv_m * impulse
        omega = omega + inv_i * (r[0] * impulse[1] - r[1] * impulse[0])
        # Side engines.
        e = 3 * dispersion[1] + direction * SIDE_ENGINE_AWAY / SCALE
        o = jnp.stack([tip[0] * dispersion[0] + side[0] * e, -tip[1] * dispersion[0] - side[1] * e])
        at = origin + o + jnp.stack([-tip[0] * 17 / SCALE, tip[1] * SIDE_ENGINE_HEIGHT / SCALE])
        impulse = -o * params.side_engine_power * s_power
        r = at - com
        vel = vel + inv_m * impulse
        omega = omega + inv_i * (r[0] * impulse[1] - r[1] * impulse[0])
        return vel, omega, m_power, s_power, direction * s_power

    @staticmethod
    def _origin(state: EnvState) -> Array:
        """The lander body's origin (Box2D ``lander.position``); ``pos`` holds its centre."""
        return state.pos[0] - phys._rot(state.angle[0], jnp.asarray(_LANDER_C, jnp.float32))

    def advance(
        self,
        dispersion: Array,
        state: EnvState,
        action: Array,
        force: Array,
        params: EnvParams,
        contacts: bool = True,
    ) -> tuple[Array, EnvState, Array, Array]:
        """Gymnasium's ``step`` body with its two dispersion draws given (``dispersion`` [2],
        each uniform(-1, 1) / SCALE): engines, one world step, observation, reward, end.
        Returns ``(obs, state, reward, terminated)``; ``state.time`` is left as it was.

        ``contacts=False`` skips collision (reset's first step: the lander starts far above the
        highest terrain), which keeps the auto-reset inside every ``step`` cheap."""
        vel0, omega0, m_power, s_power, side = self._engines(state, action, dispersion, params)
        bodies = phys.Bodies(
            state.pos, state.angle, state.vel.at[0].set(vel0), state.omega.at[0].set(omega0)
        )
        bodies, sleep_time, asleep, impulses, touching = phys.world_step(
            MODEL,
            bodies,
            state.terrain,
            force,
            state.sleep_time,
            state.impulses,
            dt=1.0 / FPS,
            gravity=GRAVITY,
            velocity_iterations=self.velocity_iterations,
            position_iterations=self.position_iterations,
            num_contacts=self.num_contacts if contacts else 0,
        )
        if not contacts:
            zero = phys.zero_impulses(3, 2, self.num_contacts)
            impulses = impulses._replace(
                contact_ids=zero.contact_ids, normal=zero.normal, tangent=zero.tangent
            )
        new = state.replace(
            pos=bodies.pos,
            angle=bodies.angle,
            vel=bodies.vel,
            omega=bodies.omega,
            sleep_time=sleep_time,
            impulses=impulses,
            leg_contact=touching[1:],
            game_over=state.game_over | touching[0],
            awake=state.awake & ~asleep,
            engines=jnp.stack([m_power, side]).astype(jnp.float32),
        )
        obs = self.get_obs(new)
        shaping = (
            -100 * jnp.sqrt(obs[0] * obs[0] + obs[1] * obs[1])
            - 100 * jnp.sqrt(obs[2] * obs[2] + obs[3] * obs[3])
            - 100 * jnp.abs(obs[4])
            + 10 * obs[6]
            + 10 * obs[7]
        )
        reward = shaping - state.prev_shaping - m_power * 0.30 - s_power * 0.03
        crashed = new.game_over | (jnp.abs(obs[0]) >= 1.0)
        reward = jnp.where(crashed, -100.0, reward)
        reward = jnp.where(new.awake, reward, 100.0)
        terminated = crashed | ~new.awake
        return obs, new.replace(prev_shaping=shaping), reward.astype(jnp.float32), terminated

    def step_env(
        self, key: PRNGKey, state: EnvState, action: Array, params: EnvParams
    ) -> tuple[Array, EnvState, Array, Array, dict[str, Any]]:
        obs, new, reward, terminated = self.advance(
            _dispersion(key), state, action, jnp.zeros((3, 2), jnp.float32), params
        )
        new = new.replace(time=state.time + 1)
        return (
            jax.lax.stop_gradient(obs),
            jax.lax.stop_gradient(new),
            reward,
            terminated,
            {"discount": jnp.where(terminated, 0.0, 1.0)},
        )

    def reset_from(
        self, key: PRNGKey, height: Array, force: Array, params: EnvParams
    ) -> tuple[Array, EnvState]:
        """Reset with given terrain heights [CHUNKS + 1] and initial force [2]; ``key`` draws
        the engine dispersion of the first (no-op) step, as Gymnasium's reset does."""
        terrain = terrain_from_heights(height)
        x0, y0 = W / 2, H
        origins = np.array([(x0, y0)] + [(x0 - i * LEG_AWAY / SCALE, y0) for i in _SIDES])
        angles = np.array([0.0] + [i * 0.05 for i in _SIDES])
        pos = origins.copy()
        pos[0] += _LANDER_C  # the lander starts at angle 0, so its centre is origin + centroid
        state = EnvState(
            pos=jnp.asarray(pos, jnp.float32),
            angle=jnp.asarray(angles, jnp.float32),
            vel=jnp.zeros((3, 2), jnp.float32),
            omega=jnp.zeros((3,), jnp.float32),
            terrain=terrain,
            sleep_time=jnp.zeros((3,), jnp.float32),
            impulses=phys.zero_impulses(3, 2, self.num_contacts),
            leg_contact=jnp.zeros((2,), bool),
            game_over=jnp.zeros((), bool),
            awake=jnp.ones((), bool),
            prev_shaping=jnp.zeros((), jnp.float32),
            engines=jnp.zeros((2,), jnp.float32),
            time=0,
        )
        noop = jnp.zeros((2,), jnp.float32) if self.continuous else jnp.zeros((), jnp.int32)
        f = jnp.zeros((3, 2), jnp.float32).at[0].set(jnp.asarray(force, jnp.float32))
        obs, state, _, _ = self.advance(_dispersion(key), state, noop, f, params, contacts=False)
        return obs, state

    def reset_env(self, key: PRNGKey, params: EnvParams) -> tuple[Array, EnvState]:
        k_height, k_force, k_step = jax.random.split(key, 3)
        height = jax.random.uniform(k_height, (CHUNKS + 1,), jnp.float32, 0.0, H / 2)
        force = jax.random.uniform(
            k_force, (2,), jnp.float32, -params.initial_random, params.initial_random
        )
        return self.reset_from(k_step, height, force, params)

    def get_obs(self, state: EnvState, params: EnvParams | None = None, key: Any = None) -> Array:
        origin = self._origin(state)
        vel = state.vel[0]
        return jnp.stack(
            [
                (origin[0] - W / 2) / (W / 2),
                (origin[1] - (HELIPAD_Y + LEG_DOWN / SCALE)) / (H / 2),
                vel[0] * (W / 2) / FPS,
                vel[1] * (H / 2) / FPS,
                state.angle[0],
                20.0 * state.omega[0] / FPS,
                state.leg_contact[0].astype(jnp.float32),
                state.leg_contact[1].astype(jnp.float32),
            ]
        ).astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> Array:
        obs = self.get_obs(state)
        return state.game_over | (jnp.abs(obs[0]) >= 1.0) | ~state.awake


def heuristic_action(obs: Array, continuous: bool) -> Array:
    """Gymnasium's ``heuristic(env, s)`` lander controller, in JAX.

    Args:
      obs: an observation [8] (vmap it for a batch).
      continuous: return a Box action [2] (float32) instead of a Discrete one (int32).
    """
    s = obs
    angle_targ = jnp.clip(s[0] * 0.5 + s[2] * 1.0, -0.4, 0.4)
    hover_targ = 0.55 * jnp.abs(s[0])
    angle_todo = (angle_targ - s[4]) * 0.5 - s[5] * 1.0
    hover_todo = (hover_targ - s[1]) * 0.5 - s[3] * 0.5
    legs = (s[6] != 0) | (s[7] != 0)
    angle_todo = jnp.where(legs, 0.0, angle_todo)
    hover_todo = jnp.where(legs, -s[3] * 0.5, hover_todo)
    if continuous:
        return jnp.clip(jnp.stack([hover_todo * 20 - 1, -angle_todo * 20]), -1.0, 1.0).astype(
            jnp.float32
        )
    a = jnp.where(angle_todo > 0.05, 1, 0)
    a = jnp.where(angle_todo < -0.05, 3, a)
    a = jnp.where((hover_todo > jnp.abs(angle_todo)) & (hover_todo > 0.05), 2, a)
    return a.astype(jnp.int32)
