"""A compact 2D rigid-body solver for the lunar lander: Box2D's algorithm, in JAX.

Three dynamic convex polygons (the lander and its two legs), two revolute joints with motors
and angle limits (lander to leg), and a static terrain of edges. One :func:`world_step` is
Box2D 2.3's ``b2World::Step`` restricted to what the lander uses:

1. integrate velocities (gravity, the applied force);
2. contacts between each polygon and the terrain at the step's starting pose (polygon vertices
   against edges, terrain vertices against polygon faces), the ``K`` closest per body; those
   touching (within both skins, 2 x 0.01 m) are Box2D's manifold points;
3. sequential impulses, warm-started from the last step's impulses: each iteration solves the
   joints (motor, limit, point), then the contacts (friction, then normal impulse);
4. integrate positions (with Box2D's translation and rotation clamps);
5. non-linear Gauss-Seidel position correction of contacts and joints, Box2D's constants
   (Baumgarte 0.2, slop 0.005 m, corrections clamped), stopping when solved;
6. sleeping: an island whose bodies all stay below the sleep tolerances for 0.5 s sleeps;
7. continuous collision: a body that ends the step deeper than Box2D's time-of-impact target
   is moved back along its sweep to that time (bisection), stopped by its contacts there with
   joints ignored (Box2D's TOI sub-step: position correction with Baumgarte 0.75, then
   velocities), and moved on for the rest of the step.

Bodies are arrays with a leading body axis [B]; positions are centres of mass.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rljax.types import Array

# Box2D's constants (b2Settings.h).
LINEAR_SLOP = 0.005
ANGULAR_SLOP = 2.0 / 180.0 * math.pi
POLYGON_RADIUS = 2.0 * LINEAR_SLOP
BAUMGARTE = 0.2
MAX_LINEAR_CORRECTION = 0.2
MAX_ANGULAR_CORRECTION = 8.0 / 180.0 * math.pi
MAX_TRANSLATION = 2.0
MAX_ROTATION = 0.5 * math.pi
LINEAR_SLEEP_TOLERANCE = 0.01
ANGULAR_SLEEP_TOLERANCE = 2.0 / 180.0 * math.pi
TIME_TO_SLEEP = 0.5
TOTAL_RADIUS = 2.0 * POLYGON_RADIUS  # polygon skin + edge skin


def polygon_mass(vertices: np.ndarray, density: float) -> tuple[float, np.ndarray, float]:
    """``(mass, centroid [2], inertia about the centroid)`` of a convex CCW polygon (numpy)."""
    v = np.asarray(vertices, np.float64)
    x, y = v[:, 0], v[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cr = x * yn - xn * y
    area = cr.sum() / 2.0
    c = np.array([((x + xn) * cr).sum(), ((y + yn) * cr).sum()]) / (6.0 * area)
    j_origin = (cr * (x * x + x * xn + xn * xn + y * y + y * yn + yn * yn)).sum() / 12.0
    mass = density * area
    return float(mass), c, float(density * j_origin - mass * (c @ c))


def polygon_normals(vertices: np.ndarray) -> np.ndarray:
    """Outward unit normals [V, 2] of the faces ``v[i] -> v[i + 1]`` of a CCW polygon."""
    v = np.asarray(vertices, np.float64)
    e = np.roll(v, -1, axis=0) - v
    n = np.stack([e[:, 1], -e[:, 0]], axis=1)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


class Bodies(NamedTuple):
    """Dynamic bodies, leading axis [B]."""

    pos: Array  # [B, 2] centre of mass
    angle: Array  # [B]
    vel: Array  # [B, 2] velocity of the centre of mass
    omega: Array  # [B]


class Model(NamedTuple):
    """Static description of the lander's bodies and joints (numpy arrays and floats)."""

    inv_mass: np.ndarray  # [B]
    inv_inertia: np.ndarray  # [B]
    friction: np.ndarray  # [B] friction with the ground (already mixed)
    body_verts: np.ndarray  # [B-1, V, 2] leg vertices about their centres (B-1 legs alike)
    body_normals: np.ndarray  # [B-1, V, 2]
    root_verts: np.ndarray  # [V0, 2] lander vertices about its centre of mass
    root_normals: np.ndarray  # [V0, 2]
    anchor_a: np.ndarray  # [J, 2] joint anchor on the lander, about its centre of mass
    anchor_b: np.ndarray  # [J, 2] joint anchor on each leg, about its centre
    motor_speed: np.ndarray  # [J]
    max_motor_torque: float
    lower: np.ndarray  # [J]
    upper: np.ndarray  # [J]


class Contacts(NamedTuple):
    """Contact points [B, K]. Kind A: a body vertex against an edge (world normal); kind B: a
    terrain vertex against a body face (normal in the body frame)."""

    kind_b: Array  # bool
    a_local: Array  # [..., 2] body vertex (A) or face vertex (B), body frame
    n_vec: Array  # [..., 2] world edge normal (A) or body-frame face normal (B)
    p_world: Array  # [..., 2] point on the edge (A) or the terrain vertex (B)
    sep: Array  # separation at generation (skins included: <= 0 is touching)
    active: Array  # bool
    ids: Array  # int: the candidate's feature (which vertex against which edge or face)


class Impulses(NamedTuple):
    """Accumulated impulses of the last step, to warm-start the next one (as Box2D does)."""

    point: Array  # [J, 2]
    motor: Array  # [J]
    limit: Array  # [J]
    contact_ids: Array  # [B, K] int32 feature ids (-1: none)
    normal: Array  # [B, K]
    tangent: Array  # [B, K]


def zero_impulses(num_bodies: int, num_joints: int, num_contacts: int) -> Impulses:
    zj = jnp.zeros((num_joints,), jnp.float32)
    zc = jnp.zeros((num_bodies, num_contacts), jnp.float32)
    return Impulses(
        jnp.zeros((num_joints, 2), jnp.float32),
        zj,
        zj,
        jnp.full((num_bodies, num_contacts), -1, jnp.int32),
        zc,
        zc,
    )


def _rot(angle: Array, v: Array) -> Array:
    c, s = jnp.cos(angle)[..., None], jnp.sin(angle)[..., None]
    return jnp.stack(
        [
            c[..., 0] * v[..., 0] - s[..., 0] * v[..., 1],
            s[..., 0] * v[..., 0] + c[..., 0] * v[..., 1],
        ],
        -1,
    )


def _cross(a: Array, b: Array) -> Array:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _cross_sv(w: Array, r: Array) -> Array:
    """w x r for a scalar w."""
    return jnp.stack([-w * r[..., 1], w * r[..., 0]], -1)


def candidates(verts: Array, normals: Array, pos: Array, angle: Array, terrain: Array) -> Contacts:
    """Every candidate contact of one polygon with the terrain (a polyline [P, 2], x rising)."""
    wv = pos + _rot(angle, verts)  # [V, 2]
    p1, p2 = terrain[:-1], terrain[1:]  # [E, 2]
    d = p2 - p1
    length = jnp.sqrt((d * d).sum(-1))
    en = jnp.stack([-d[:, 1], d[:, 0]], -1) / length[:, None]  # upward edge normals [E, 2]
    rel = wv[:, None, :] - p1[None, :, :]  # [V, E, 2]
    t = (rel * d[None]).sum(-1) / (length * length)[None]
    sep_a = (rel * en[None]).sum(-1) - TOTAL_RADIUS
    valid_a = (t >= 0.0) & (t <= 1.0)
    nv, ne = sep_a.shape
    # Kind B: each terrain vertex against the polygon face of largest separation.
    wn = _rot(angle, normals)  # [V, 2]
    relb = terrain[:, None, :] - wv[None, :, :]  # [P, V, 2]
    face_sep = (relb * wn[None]).sum(-1)  # [P, V]
    f = jnp.argmax(face_sep, axis=1)  # [P]
    sep_b = jnp.take_along_axis(face_sep, f[:, None], 1)[:, 0] - TOTAL_RADIUS
    fv, fv2 = wv[f], wv[(f + 1) % verts.shape[0]]
    fe = fv2 - fv
    tb = ((terrain - fv) * fe).sum(-1) / (fe * fe).sum(-1)
    valid_b = (tb >= 0.0) & (tb <= 1.0)
    npts = terrain.shape[0]
    return Contacts(
        kind_b=jnp.concatenate([jnp.zeros(nv * ne, bool), jnp.ones(npts, bool)]),
        a_local=jnp.concatenate(
            [jnp.broadcast_to(verts[:, None, :], (nv, ne, 2)).reshape(-1, 2), verts[f]]
        ),
        n_vec=jnp.concatenate([jnp.broadcast_to(en[None], (nv, ne, 2)).reshape(-1, 2), normals[f]]),
        p_world=jnp.concatenate([jnp.broadcast_to(p1[None], (nv, ne, 2)).reshape(-1, 2), terrain]),
        sep=jnp.concatenate([sep_a.reshape(-1), sep_b]),
        active=jnp.concatenate([valid_a.reshape(-1), valid_b]),
        ids=jnp.arange(nv * ne + npts, dtype=jnp.int32),
    )


def _select(c: Contacts, k: int, margin: Array) -> Contacts:
    """The ``k`` closest valid candidates, active if closer than ``margin``."""
    score = jnp.where(c.active, c.sep, jnp.inf)
    _, idx = jax.lax.top_k(-score, k)
    sel = jax.tree.map(lambda x: x[idx], c)
    return sel._replace(active=sel.active & (sel.sep < margin))


def _contacts(model: Model, bodies: Bodies, terrain: Array, k: int, dt: float) -> Contacts:
    nb = bodies.angle.shape[0]
    if k == 0:  # no contact solving (the lander's first step, high above the terrain)
        z = jnp.zeros((nb, 0), jnp.float32)
        z2 = jnp.zeros((nb, 0, 2), jnp.float32)
        return Contacts(z.astype(bool), z2, z2, z2, z, z.astype(bool), z.astype(jnp.int32))
    speed = jnp.sqrt((bodies.vel * bodies.vel).sum(-1))
    margin = 0.05 + 2.0 * dt * (speed + jnp.abs(bodies.omega))  # reach within the step
    root = candidates(
        jnp.asarray(model.root_verts, jnp.float32),
        jnp.asarray(model.root_normals, jnp.float32),
        bodies.pos[0],
        bodies.angle[0],
        terrain,
    )
    legs = jax.vmap(candidates, in_axes=(0, 0, 0, 0, None))(
        jnp.asarray(model.body_verts, jnp.float32),
        jnp.asarray(model.body_normals, jnp.float32),
        bodies.pos[1:],
        bodies.angle[1:],
        terrain,
    )
    r = _select(root, k, margin[0])
    legs = jax.vmap(_select, in_axes=(0, None, 0))(legs, k, margin[1:])
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), r, legs)


def _contact_geometry(c: Contacts, pos: Array, angle: Array) -> tuple[Array, Array, Array]:
    """``(point, normal from ground to body, separation)`` of contacts [B, K] at a pose."""
    ang = angle[:, None]
    q = pos[:, None, :] + _rot(ang, c.a_local)
    nb = _rot(ang, c.n_vec)
    kb = c.kind_b[..., None]
    normal = jnp.where(kb, -nb, c.n_vec)
    point = jnp.where(kb, c.p_world, q)
    sep = jnp.where(
        c.kind_b,
        ((c.p_world - q) * nb).sum(-1),
        ((q - c.p_world) * c.n_vec).sum(-1),
    )
    return point, normal, sep - TOTAL_RADIUS


def _col(x: Array, k: Array) -> Array:
    """Column ``k`` (a traced index) of a [B, K, ...] array: [B, ...]."""
    return jax.lax.dynamic_index_in_dim(x, k, axis=1, keepdims=False)


def _contact_velocities(vel, omega, cn, ct, frame, act, im, ii, friction):
    """One sequential-impulse sweep over contacts [B, K] (friction, then normal), the bodies
    side by side (each is against static ground). ``frame = (r, normal, tangent, mass_n,
    mass_t)``, each [B, K, ...]. Returns ``(vel, omega, cn, ct)``."""
    r, normal, tangent, mass_n, mass_t = frame
    nk = act.shape[1]
    if nk == 0:
        return vel, omega, cn, ct

    def friction_k(k, carry):
        vel, omega, ct = carry
        rk, tk = _col(r, k), _col(tangent, k)
        dv = vel + _cross_sv(omega, rk)
        maxf = friction * _col(cn, k)
        old = _col(ct, k)
        new = jnp.clip(old - _col(mass_t, k) * (dv * tk).sum(-1), -maxf, maxf)
        lam = _col(act, k) * (new - old)
        ct = ct + lam[:, None] * jax.nn.one_hot(k, nk, dtype=ct.dtype)
        return vel + (im * lam)[:, None] * tk, omega + ii * lam * _cross(rk, tk), ct

    def normal_k(k, carry):
        vel, omega, cn = carry
        rk, nrm = _col(r, k), _col(normal, k)
        dv = vel + _cross_sv(omega, rk)
        old = _col(cn, k)
        new = jnp.maximum(old - _col(mass_n, k) * (dv * nrm).sum(-1), 0.0)
        lam = _col(act, k) * (new - old)
        cn = cn + lam[:, None] * jax.nn.one_hot(k, nk, dtype=cn.dtype)
        return vel + (im * lam)[:, None] * nrm, omega + ii * lam * _cross(rk, nrm), cn

    vel, omega, ct = jax.lax.fori_loop(0, nk, friction_k, (vel, omega, ct))
    vel, omega, cn = jax.lax.fori_loop(0, nk, normal_k, (vel, omega, cn))
    return vel, omega, cn, ct


def _contact_positions(con, act, pos, angle, baumgarte, im, ii):
    """One non-linear Gauss-Seidel sweep over contacts [B, K] (``act`` float mask).
    Returns ``(pos, angle, smallest separation of an active contact)``."""
    nk = act.shape[1]
    if nk == 0:
        return pos, angle, jnp.asarray(jnp.inf, jnp.float32)

    def one(k, carry):
        pos, angle, min_sep = carry
        ck = jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, k, 1, axis=1), con)
        pt, nrm, sp = (x[:, 0] for x in _contact_geometry(ck, pos, angle))
        rk = pt - pos
        c = jnp.clip(baumgarte * (sp + LINEAR_SLOP), -MAX_LINEAR_CORRECTION, 0.0)
        rn = _cross(rk, nrm)
        a = _col(act, k)
        imp = a * (-c / (im + ii * rn * rn))
        min_sep = jnp.minimum(min_sep, jnp.where(a > 0, sp, jnp.inf).min())
        return pos + (im * imp)[:, None] * nrm, angle + ii * imp * rn, min_sep

    return jax.lax.fori_loop(0, nk, one, (pos, angle, jnp.asarray(jnp.inf, jnp.float32)))


def world_step(
    model: Model,
    bodies: Bodies,
    terrain: Array,
    force: Array,
    sleep_time: Array,
    impulses: Impulses,
    *,
    dt: float,
    gravity: float,
    velocity_iterations: int,
    position_iterations: int,
    num_contacts: int,
    unroll: int = 1,
) -> tuple[Bodies, Array, Array, Impulses, Array]:
    """One Box2D step. ``force`` [B, 2] acts on the centres during this step.

    Returns ``(bodies, sleep_time [B], asleep, impulses, touching [B])``: ``touching`` is
    whether each body touched the ground at the step's start or at a time of impact in it
    (Box2D's begin/end contact events).
    """
    inv_m = np.asarray(model.inv_mass, np.float32)
    inv_i = np.asarray(model.inv_inertia, np.float32)
    mu = np.asarray(model.friction, np.float32)
    njoints = model.anchor_a.shape[0]
    # 1. Velocities.
    vel = bodies.vel + dt * (jnp.array([0.0, gravity]) + inv_m[:, None] * force)
    omega = bodies.omega
    pos, angle = bodies.pos, bodies.angle
    # 2. Contacts (from the step's starting pose) and joint set-up.
    con = _contacts(model, bodies, terrain, num_contacts, dt)
    point, normal, sep0 = _contact_geometry(con, pos, angle)
    r = point - pos[:, None, :]  # [B, K, 2]
    tangent = jnp.stack([normal[..., 1], -normal[..., 0]], -1)
    rn, rt = _cross(r, normal), _cross(r, tangent)
    mass_n = 1.0 / (inv_m[:, None] + inv_i[:, None] * rn * rn)
    mass_t = 1.0 / (inv_m[:, None] + inv_i[:, None] * rt * rt)
    reach = con  # every candidate the bodies can reach this step (for the time of impact)
    touching = con.active & (sep0 <= 0.0)  # Box2D's manifold points: touching at the start
    con = con._replace(active=touching)
    active = touching
    ra = _rot(angle[0], jnp.asarray(model.anchor_a, jnp.float32))  # [J, 2]
    rb = _rot(angle[1:], jnp.asarray(model.anchor_b, jnp.float32))  # [J, 2]
    lower = jnp.asarray(model.lower, jnp.float32)
    upper = jnp.asarray(model.upper, jnp.float32)
    joint_angle = angle[1:] - angle[0]
    at_lower = joint_angle <= lower
    at_upper = (joint_angle >= upper) & ~at_lower
    max_motor = dt * model.max_motor_torque

    nb, nk = inv_m.shape[0], num_contacts
    im, ii = inv_m, inv_i
    eye_b = np.eye(nb, dtype=np.float32)
    eye_j = np.eye(njoints, dtype=np.float32)
    speed = np.asarray(model.motor_speed, np.float32)
    mmass = 1.0 / (model.inv_inertia[0] + model.inv_inertia[1:])
    friction = mu

    def point_k(rA, rB, ma, mb, ia, ib):
        k11 = ma + mb + ia * rA[..., 1] ** 2 + ib * rB[..., 1] ** 2
        k12 = -ia * rA[..., 0] * rA[..., 1] - ib * rB[..., 0] * rB[..., 1]
        k22 = ma + mb + ia * rA[..., 0] ** 2 + ib * rB[..., 0] ** 2
        inv = 1.0 / (k11 * k22 - k12 * k12)
        return k11 * inv, k12 * inv, k22 * inv

    def solve22(kinv, c):
        k11, k12, k22 = kinv
        return jnp.stack([k22 * c[..., 0] - k12 * c[..., 1], k11 * c[..., 1] - k12 * c[..., 0]], -1)

    kvel = point_k(ra, rb, im[0], im[1:], ii[0], ii[1:])  # each [J]

    def apply_joint(vel, omega, j, p, lam, rA, rB):
        """Joint j's linear impulse p [2] and angular impulse lam on the lander and leg j."""
        b = 1 + j
        dv = (-eye_b[0] * im[0])[:, None] * p + (eye_b[b] * im[b])[:, None] * p
        dw = -eye_b[0] * ii[0] * (_cross(rA, p) + lam) + eye_b[b] * ii[b] * (_cross(rB, p) + lam)
        return vel + dv, omega + dw

    # 3. Warm start: last step's impulses of the same joints and contact features.
    same = (con.ids[:, :, None] == impulses.contact_ids[:, None, :]) & active[..., None]
    cn0 = jnp.where(same, impulses.normal[:, None, :], 0.0).sum(-1)
    ct0 = jnp.where(same, impulses.tangent[:, None, :], 0.0).sum(-1)
    p_c = cn0[..., None] * normal + ct0[..., None] * tangent
    vel = vel + im[:, None] * p_c.sum(1)
    omega = omega + ii * _cross(r, p_c).sum(1)
    limit0 = jnp.where(
        at_lower,
        jnp.maximum(impulses.limit, 0.0),
        jnp.where(at_upper, jnp.minimum(impulses.limit, 0.0), 0.0),
    )
    for j in range(njoints):
        lam = impulses.motor[j] + limit0[j]
        vel, omega = apply_joint(vel, omega, j, impulses.point[j], lam, ra[j], rb[j])
    act = active.astype(jnp.float32)
    frame = (r, normal, tangent, mass_n, mass_t)

    def vel_iter(_, carry):
        vel, omega, motor, limit, point, cn, ct = carry
        for j in range(njoints):
            b = 1 + j
            # Motor.
            cdot = omega[b] - omega[0] - speed[j]
            new = jnp.clip(motor[j] - mmass[j] * cdot, -max_motor, max_motor)
            imp = new - motor[j]
            motor = motor + eye_j[j] * imp
            omega = omega + (eye_b[b] * ii[b] - eye_b[0] * ii[0]) * imp
            # Limit (one-sided at the limit it sits on).
            cand = limit[j] - mmass[j] * (omega[b] - omega[0])
            new = jnp.where(
                at_lower[j],
                jnp.maximum(cand, 0.0),
                jnp.where(at_upper[j], jnp.minimum(cand, 0.0), 0.0),
            )
            imp = new - limit[j]
            limit = limit + eye_j[j] * imp
            omega = omega + (eye_b[b] * ii[b] - eye_b[0] * ii[0]) * imp
            # Point: v_B + w_B x r_B - v_A - w_A x r_A = 0.
            cdot = vel[b] + _cross_sv(omega[b], rb[j]) - vel[0] - _cross_sv(omega[0], ra[j])
            p = -solve22((kvel[0][j], kvel[1][j], kvel[2][j]), cdot)
            point = point + eye_j[j][:, None] * p
            vel, omega = apply_joint(vel, omega, j, p, 0.0, ra[j], rb[j])
        # Contacts: every body against static ground, so the bodies are solved together.
        vel, omega, cn, ct = _contact_velocities(vel, omega, cn, ct, frame, act, im, ii, friction)
        return vel, omega, motor, limit, point, cn, ct

    carry = (vel, omega, impulses.motor, limit0, impulses.point, cn0, ct0)
    vel, omega, motor, limit, point, cn, ct = jax.lax.fori_loop(
        0, velocity_iterations, vel_iter, carry, unroll=unroll
    )
    new_impulses = Impulses(point, motor, limit, jnp.where(active, con.ids, -1), cn, ct)
    # 4. Positions, with Box2D's clamps.
    t2 = (dt * dt) * (vel * vel).sum(-1)
    vel = (
        vel
        * jnp.where(t2 > MAX_TRANSLATION**2, MAX_TRANSLATION / jnp.sqrt(t2 + 1e-30), 1.0)[:, None]
    )
    rot = dt * omega
    omega = omega * jnp.where(
        rot * rot > MAX_ROTATION**2, MAX_ROTATION / (jnp.abs(rot) + 1e-30), 1.0
    )
    pos = pos + dt * vel
    angle = angle + dt * omega
    anchor_a = jnp.asarray(model.anchor_a, jnp.float32)
    anchor_b = jnp.asarray(model.anchor_b, jnp.float32)

    # 5. Position correction.
    def pos_iter(carry):
        it, pos, angle, _ = carry
        pos, angle, min_sep = _contact_positions(con, act, pos, angle, BAUMGARTE, im, ii)
        ok = min_sep >= -3.0 * LINEAR_SLOP
        for j in range(njoints):
            b = 1 + j
            c_low = angle[b] - angle[0] - lower[j]
            c_up = angle[b] - angle[0] - upper[j]
            ang_err = jnp.where(at_lower[j], -c_low, jnp.where(at_upper[j], c_up, 0.0))
            cl = jnp.where(
                at_lower[j],
                jnp.clip(c_low + ANGULAR_SLOP, -MAX_ANGULAR_CORRECTION, 0.0),
                jnp.where(
                    at_upper[j], jnp.clip(c_up - ANGULAR_SLOP, 0.0, MAX_ANGULAR_CORRECTION), 0.0
                ),
            )
            limp = -mmass[j] * cl
            angle = angle + (eye_b[b] * ii[b] - eye_b[0] * ii[0]) * limp
            rA = _rot(angle[0], anchor_a[j])
            rB = _rot(angle[b], anchor_b[j])
            cvec = pos[b] + rB - pos[0] - rA
            err = jnp.sqrt((cvec * cvec).sum())
            p = -solve22(point_k(rA, rB, im[0], im[b], ii[0], ii[b]), cvec)
            pos = pos + (eye_b[b] * im[b] - eye_b[0] * im[0])[:, None] * p
            angle = angle + eye_b[b] * ii[b] * _cross(rB, p) - eye_b[0] * ii[0] * _cross(rA, p)
            ok = ok & (err <= LINEAR_SLOP) & (ang_err <= ANGULAR_SLOP)
        return it + 1, pos, angle, ok

    def pos_cond(carry):
        return (carry[0] < position_iterations) & ~carry[-1]

    _, pos, angle, solved = jax.lax.while_loop(
        pos_cond, pos_iter, (jnp.zeros((), jnp.int32), pos, angle, jnp.zeros((), bool))
    )
    # 6. Sleep.
    slow = (omega * omega <= ANGULAR_SLEEP_TOLERANCE**2) & (
        (vel * vel).sum(-1) <= LINEAR_SLEEP_TOLERANCE**2
    )
    sleep_time = jnp.where(slow, sleep_time + dt, 0.0)
    asleep = (sleep_time.min() >= TIME_TO_SLEEP) & solved
    # 7. Time of impact: a body that went deeper than 3 slops into the ground is moved back to
    # where it first reached that depth along its sweep, its contacts there stop it (joints
    # ignored, as in Box2D's TOI sub-step), and it moves on for the rest of the step.
    if nk == 0:
        return Bodies(pos, angle, vel, omega), sleep_time, asleep, new_impulses, jnp.zeros(nb, bool)
    pos, angle, vel, omega, hit = _time_of_impact(
        reach, bodies.pos, bodies.angle, pos, angle, vel, omega, im, ii, friction, dt
    )
    touch = jnp.where(reach.active, reach.sep, jnp.inf).min(-1) <= 0.0
    return Bodies(pos, angle, vel, omega), sleep_time, asleep, new_impulses, touch | hit


TOI_BAUMGARTE = 0.75
TOI_VELOCITY_ITERATIONS = 20
TOI_POSITION_ITERATIONS = 20
TOI_BISECTIONS = 12


def _time_of_impact(con, pos0, angle0, pos1, angle1, vel, omega, im, ii, friction, dt):
    """Box2D's continuous collision against static ground, per body (see :func:`world_step`).

    Returns ``(pos, angle, vel, omega, hit [B])``."""
    target = -3.0 * LINEAR_SLOP  # Box2D's TOI target: core distance totalRadius - 3 slop

    def sweep_sep(alpha):
        p = pos0 + alpha[:, None] * (pos1 - pos0)
        a = angle0 + alpha * (angle1 - angle0)
        _, _, sep = _contact_geometry(con, p, a)
        return jnp.where(con.active, sep, jnp.inf).min(-1)

    nb = pos0.shape[0]
    one = jnp.ones((nb,), jnp.float32)
    hit = (sweep_sep(one) < target) & (sweep_sep(0 * one) >= target)

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        deep = sweep_sep(mid) < target
        return jnp.where(deep, lo, mid), jnp.where(deep, mid, hi)

    alpha, _ = jax.lax.fori_loop(0, TOI_BISECTIONS, bisect, (0 * one, one))
    pos = pos0 + alpha[:, None] * (pos1 - pos0)
    angle = angle0 + alpha * (angle1 - angle0)
    _, _, sep = _contact_geometry(con, pos, angle)
    act = (con.active & (sep <= 0.0) & hit[:, None]).astype(jnp.float32)

    def pos_iter(_, pa):
        return _contact_positions(con, act, *pa, TOI_BAUMGARTE, im, ii)[:2]

    pos, angle = jax.lax.fori_loop(0, TOI_POSITION_ITERATIONS, pos_iter, (pos, angle))
    point, normal, _ = _contact_geometry(con, pos, angle)
    r = point - pos[:, None, :]
    tangent = jnp.stack([normal[..., 1], -normal[..., 0]], -1)
    rn, rt = _cross(r, normal), _cross(r, tangent)
    mass_n = 1.0 / (im[:, None] + ii[:, None] * rn * rn)
    mass_t = 1.0 / (im[:, None] + ii[:, None] * rt * rt)
    frame = (r, normal, tangent, mass_n, mass_t)

    def vel_iter(_, carry):
        return _contact_velocities(*carry, frame, act, im, ii, friction)

    z = jnp.zeros(sep.shape, jnp.float32)
    vel_t, omega_t, _, _ = jax.lax.fori_loop(
        0, TOI_VELOCITY_ITERATIONS, vel_iter, (vel, omega, z, z)
    )
    rest = (1.0 - alpha) * dt
    pos = pos + rest[:, None] * vel_t
    angle = angle + rest * omega_t
    h = hit[:, None]
    return (
        jnp.where(h, pos, pos1),
        jnp.where(hit, angle, angle1),
        jnp.where(h, vel_t, vel),
        jnp.where(hit, omega_t, omega),
        hit,
    )
