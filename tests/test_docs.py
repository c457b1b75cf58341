"""The API reference (`make docs`) builds without a warning and documents every public name.

`mkdocs build --strict` fails on any warning: a docstring section griffe cannot parse, an
argument documented that the signature lacks, a broken cross-reference. Every public module of
rljax gets a page (docs/api_reference.py generates them: rljax/agents/a2c.py ->
api/agents/a2c/) with an entry for each name it defines at the top level.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")
pytest.importorskip("material")

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    """Every public module's dotted name and file (private modules and names skipped)."""
    out = {}
    for path in sorted((ROOT / "rljax").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts):
            continue
        out[".".join(parts)] = path
    return out


def _page(site: Path, module: str) -> Path:
    """The built page of ``module``: rljax -> api/rljax/, rljax.agents.a2c -> api/agents/a2c/."""
    rel = module.split(".", 1)[1].replace(".", "/") if "." in module else "rljax"
    return site / "api" / rel / "index.html"


def _defined(path: Path) -> list[str]:
    """Public names a module defines at its top level (functions, classes, assignments)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith("_")]


def _build(out: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "WARNING" not in log, log


def test_docs_build_strict_and_cover_every_public_name(tmp_path):
    # One test, one build (under pytest-xdist a shared fixture would build once per worker).
    site = tmp_path / "site"
    _build(site)

    missing = []
    for module, path in _modules().items():
        page = _page(site, module)
        if not page.exists():
            missing.append(f"{module}: no page {page.relative_to(site)}")
            continue
        ids = set(re.findall(r'id="([\w.]+)"', page.read_text()))
        missing += [f"{module}.{n}" for n in _defined(path) if f"{module}.{n}" not in ids]
    assert not missing, missing

    # The top-level page links each re-export to its entry where it is defined.
    import rljax

    html = _page(site, "rljax").read_text()
    for name in rljax.__all__:
        obj = getattr(rljax, name)
        if not isinstance(obj, types.ModuleType):
            assert f'href="../{obj.__module__.split(".")[1]}/#{obj.__module__}.{name}"' in html
    assert 'id="rljax.returns.gae_advantages"' in _page(site, "rljax.returns").read_text()
    assert 'id="rljax.losses.ppo_clip_loss"' in _page(site, "rljax.losses").read_text()

    assert (site / "index.html").exists()
    conventions = (site / "conventions" / "index.html").read_text()
    for heading in ("Shapes: time first", "Termination is not truncation", "Gradients", "Keys"):
        assert heading in conventions, heading
    assert "truncated_generalized_advantage_estimation" in conventions


def test_home_page_example_runs():
    text = (ROOT / "docs" / "index.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    scope: dict = {}
    exec(compile(code, "docs/index.md", "exec"), scope)
    assert scope["adv"].shape == (5, 3)
