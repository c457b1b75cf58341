"""The experiment scripts' persistent compilation cache (rljax.run.compile_cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache as jax_cache

from rljax.run import compile_cache

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import train  # noqa: E402

TINY = ["--num-seeds", "2", "--total-steps", "1024", "--num-chunks", "2", "--quiet"]
TINY += ["--eval-episodes", "2"]


@pytest.fixture
def restore_cache():
    """This test process's cache settings (tests/conftest.py) as they were, afterwards."""
    names = (
        "jax_enable_compilation_cache",
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
    )
    before = {n: getattr(jax.config, n) for n in names}
    yield
    for n, v in before.items():
        jax.config.update(n, v)
    jax_cache.reset_cache()


def test_default_dir_prefers_jax_variable_then_xdg_then_home():
    assert compile_cache.default_dir({"JAX_COMPILATION_CACHE_DIR": "/a/b"}) == Path("/a/b")
    assert compile_cache.default_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/rljax/jax")
    assert compile_cache.default_dir({}) == Path.home() / ".cache" / "rljax" / "jax"


def test_stats_count_from_the_start_of_a_run():
    assert compile_cache.stats(None) == {"dir": None}
    now = compile_cache.counts()
    assert compile_cache.stats(Path("/c"), now) == {"dir": "/c", "hits": 0, "misses": 0}


CHILD = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
from rljax.run import compile_cache
compile_cache.enable(sys.argv[1], min_compile_secs=0.0)
f = jax.jit(lambda x: jnp.cumsum(jnp.sin(x) * 3.0) @ jnp.cos(x))
y = np.asarray(f(jnp.linspace(0.0, 1.0, 256)))
print(json.dumps([compile_cache.counts(), y.tobytes().hex()]))
"""


def _child(cache: Path) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT_CACHE")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(cache)],
        env={**env, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts, value = json.loads(proc.stdout.strip().splitlines()[-1])
    return counts, value


def test_a_second_process_loads_the_program_and_computes_the_same_bits(tmp_path):
    cache = tmp_path / "cache"
    first, a = _child(cache)
    second, b = _child(cache)
    assert first["misses"] >= 1 and first["hits"] == 0, first
    assert second["hits"] >= 1 and second["misses"] == 0, second
    assert a == b


def test_train_loads_its_programs_on_the_second_run_with_the_same_results(tmp_path, restore_cache):
    cache = tmp_path / "cache"
    argv = [*TINY, "--compile-cache", str(cache)]
    assert train.main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert train.main([*argv, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / r / "summary.json").read_text()) for r in "ab")
    assert a["compile_cache"]["dir"] == str(cache)
    assert a["compile_cache"]["misses"] >= 3, a["compile_cache"]  # init, chunk, evaluation
    # The second run builds its programs anew and loads them all (programs this process
    # already holds in memory, such as small eager operations, are not asked for again).
    assert b["compile_cache"]["hits"] >= 3, b["compile_cache"]
    assert b["compile_cache"]["misses"] == 0, b["compile_cache"]
    assert a["eval_returns"] == b["eval_returns"]
    assert (tmp_path / "a" / "metrics.csv").read_text() == (
        tmp_path / "b" / "metrics.csv"
    ).read_text()


def test_none_turns_it_off(tmp_path, restore_cache):
    assert train.main([*TINY, "--compile-cache", "none", "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["compile_cache"] == {"dir": None}
    assert not jax.config.jax_enable_compilation_cache


def test_an_unusable_directory_is_refused(tmp_path, refused, restore_cache):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    refused(train.main, [*TINY, "--compile-cache", str(blocker)], "--compile-cache")
    refused(train.main, [*TINY, "--compile-cache", str(blocker / "sub")], "--compile-cache")
