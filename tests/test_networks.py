"""rljax.networks.orthogonal: flax's orthogonal initialiser, one QR at a time under vmap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np
import pytest

from rljax import networks

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("shape", "scale"), [((64, 64), np.sqrt(2)), ((3, 64), 1.0), ((64, 2), 0.01)]
)
def test_orthogonal_equals_flax_key_by_key_and_is_orthogonal(shape, scale):
    keys = jax.random.split(jax.random.key(3), 5)
    ours = np.asarray(jax.jit(jax.vmap(lambda k: networks.orthogonal(scale)(k, shape)))(keys))
    flax_init = nn.initializers.orthogonal(scale)
    want = np.stack([np.asarray(flax_init(k, shape)) for k in keys])  # one key at a time
    np.testing.assert_array_equal(ours, want)
    small = min(shape)
    for q in ours.astype(np.float64) / scale:  # orthonormal columns (or rows, if fewer)
        gram = q.T @ q if shape[0] >= shape[1] else q @ q.T
        np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)


# Sixteen runs, each drawing eight independent 64x64 orthogonal matrices, sharded over two host
# devices of a 2-thread XLA:CPU pool. With flax's initialiser (a batched QR per matrix) this
# program waits forever on jaxlib 0.10: each batched QR holds a pool thread while it waits for
# the tasks it queued on the same pool.
DEADLOCK = """
import jax, jax.numpy as jnp
from rljax import networks
mesh = jax.make_mesh((2,), ("runs",), axis_types=(jax.sharding.AxisType.Auto,))
sharding = jax.NamedSharding(mesh, jax.P("runs"))
init = networks.orthogonal(2.0 ** 0.5)
def run(key):
    return jnp.stack([init(jax.random.fold_in(key, i), (64, 64)) for i in range(8)])
f = jax.jit(jax.vmap(run), in_shardings=sharding, out_shardings=sharding)
for i in range(10):
    jax.block_until_ready(f(jax.random.split(jax.random.key(i), 16)))
print("finished")
"""


def test_batched_initialisation_finishes_with_a_two_thread_pool():
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "RLJAX_CPU_DEVICES")}
    env.update(
        PYTHONPATH=str(ROOT),
        JAX_PLATFORMS="cpu",
        PJRT_NPROC="2",
        XLA_FLAGS=" ".join([*flags, "--xla_force_host_platform_device_count=2"]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", DEADLOCK], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("finished")
