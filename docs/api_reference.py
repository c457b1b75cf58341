"""How the API reference is made from the docstrings (mkdocs.yml loads this file twice).

As an mkdocs hook (``hooks:``):

* one page per public module, generated at build time: ``rljax/agents/a2c.py`` becomes
  ``api/agents/a2c.md`` holding ``::: rljax.agents.a2c``, and a package's page is its
  ``index.md``; the pages are appended to the navigation as "API reference", in ``ORDER``. A
  new module is in the reference without an edit here.

As a griffe extension (``RljaxDocs``), two rewrites of the loaded package before rendering:

* Sphinx roles become cross-references. The docstrings name other objects with Sphinx roles
  (:func:`lambda_returns`, :class:`~rljax.types.Transition`); each becomes a link to the named
  object's entry, ``[`lambda_returns`][rljax.returns.lambda_returns]``, when the name resolves
  (in the scope of the documented object) to a public rljax object, and plain code otherwise.
  A leading ``~`` shows only the last component, as in Sphinx. A reST ``::`` before an
  indented block becomes ``:`` (the indented block is a code block in Markdown too).
* A config field without a docstring gets its ``help=`` text as one
  (``mode: str = S("gae", ..., help="gae: n-step GAE; ...")``), the meaning ``--help`` shows.
* Re-exports are listed, not documented twice. A name that a module imports from elsewhere in
  rljax and lists in ``__all__`` (``rljax.gae_advantages``, ``rljax.agents.base.ConfigError``)
  is documented once, where it is defined; the re-exporting module's docstring gets a list of
  links to those entries.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import griffe

PACKAGE = "rljax"

# Navigation order; modules not named here follow, alphabetically, within their package.
ORDER = [
    "rljax",
    "rljax.returns",
    "rljax.losses",
    "rljax.types",
    "rljax.networks",
    "rljax.replay",
    "rljax.envs",
    "rljax.envs_gymnasium",
    "rljax.envs_brax",
    "rljax.lunar_lander",
    "rljax.rollout",
    "rljax.evaluation",
    "rljax.agents",
    "rljax.agents.protocol",
    "rljax.agents.base",
    "rljax.agents.optim",
    "rljax.agents.fields",
    "rljax.agents.normalize",
    "rljax.agents.off_policy",
    "rljax.agents.a2c",
    "rljax.agents.reinforce",
    "rljax.agents.td_actor_critic",
    "rljax.agents.ppo",
    "rljax.agents.ddpg",
    "rljax.agents.td3",
    "rljax.agents.sac",
    "rljax.agents.presets",
    "rljax.run",
    "rljax.run.experiment",
    "rljax.run.loop",
    "rljax.run.gymnax",
    "rljax.run.host",
    "rljax.run.parallel",
    "rljax.run.results",
    "rljax.run.xla_cpu",
    "rljax.stats",
    "rljax.io",
]


# ---- mkdocs hook: the module pages and their navigation


def public_modules(root: Path) -> dict[str, bool]:
    """``{dotted name: is a package}`` for every module without a private part in its path."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        package = parts[-1] == "__init__"
        parts = parts[:-1] if package else parts
        if not any(p.startswith("_") for p in parts):
            out[".".join(parts)] = package
    return out


def page_of(module: str, package: bool) -> str:
    """A module's page in docs/: rljax -> api/rljax.md, rljax.io -> api/io/index.md."""
    if module == PACKAGE:
        return "api/rljax.md"
    rel = module.split(".", 1)[1].replace(".", "/")
    return f"api/{rel}/index.md" if package else f"api/{rel}.md"


def _sort_key(module: str) -> tuple:
    # Each module sorts after its package: at ORDER's place if listed, else after the listed ones.
    parts = module.split(".")
    key = []
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        key.append((ORDER.index(name), "") if name in ORDER else (len(ORDER), name))
    return tuple(key)


def _nav(modules: dict[str, bool]) -> list:
    """Nested navigation: a package is a section whose first entry is its own page."""
    sections: dict[str, list] = {}
    top: list = []
    for module in sorted(modules, key=_sort_key):
        page = page_of(module, modules[module])
        parent, _, name = module.rpartition(".")
        nested = parent in sections
        title = name if nested else module
        if modules[module] and module != PACKAGE:
            sections[module] = [page]
            page = sections[module]
        (sections[parent] if nested else top).append({title: page})
    return top


_MODULES: dict[str, bool] = {}


def on_config(config, **kwargs):
    """Finds the modules and appends their pages to the navigation as "API reference"."""
    _MODULES.clear()
    _MODULES.update(public_modules(Path(config.config_file_path).parent))
    config.nav = [*(config.nav or []), {"API reference": _nav(_MODULES)}]
    return config


def on_files(files, config, **kwargs):
    """Adds one generated page per module: ``::: rljax.xxx``."""
    from mkdocs.structure.files import File

    for module, package in _MODULES.items():
        files.append(File.generated(config, page_of(module, package), content=f"::: {module}\n"))
    return files


# ---- griffe extension: cross-references and re-exports

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):`(~?)([\w.]+)`")


def _public_path(path: str) -> bool:
    parts = path.split(".")
    return parts[0] == PACKAGE and not any(p.startswith("_") for p in parts)


def _target(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` seen from ``obj``, or None if it is not a public rljax object."""
    if name.split(".")[0] == PACKAGE:
        path = name
    else:
        first, _, rest = name.partition(".")
        try:
            path = obj.resolve(first)
        except griffe.NameResolutionError:
            return None
        path = f"{path}.{rest}" if rest else path
    return path if _public_path(path) else None


def _rewrite_roles(obj: griffe.Object, package: griffe.Module) -> None:
    def link(match: re.Match[str]) -> str:
        short, name = match.groups()
        text = name.rsplit(".", 1)[-1] if short else name
        path = _target(obj, name)
        if path is not None:
            try:
                target = package[path.split(".", 1)[1]] if "." in path else package
            except (KeyError, griffe.AliasResolutionError):
                path = None
            else:
                path = target.target_path if target.is_alias else target.path
        return f"[`{text}`][{path}]" if path and _public_path(path) else f"`{text}`"

    if obj.docstring is not None:
        text = _ROLE.sub(link, obj.docstring.value)
        # reST's "text::" before an indented block: the block is code in Markdown too.
        obj.docstring.value = re.sub(r"::\n\n", ":\n\n", text)


def _list_reexports(module: griffe.Module) -> None:
    """Hide ``module``'s re-exports of public rljax objects and link them from its docstring."""
    by_source: dict[str, list[tuple[str, str]]] = {}
    for name in module.exports or ():
        member = module.members.get(str(name))
        if member is None or not member.is_alias or not _public_path(member.target_path):
            continue
        member.public = False
        source = member.target_path.rsplit(".", 1)[0]
        by_source.setdefault(source, []).append((member.name, member.target_path))
    if not by_source:
        return
    lines = ["Re-exported here (each documented where it is defined):", ""]
    for source, names in by_source.items():
        links = ", ".join(f"[`{name}`][{path}]" for name, path in names)
        lines.append(f"- from [`{source}`][{source}]: {links}")
    text = "\n".join(lines)
    if module.docstring is None:
        module.docstring = griffe.Docstring(text, parent=module)
    else:
        module.docstring.value = f"{module.docstring.value}\n\n{text}"


FIELD_CALLS = {"S", "L", "static", "leaf", "base.static", "base.leaf"}


def _field_help(attr: griffe.Attribute) -> None:
    """A docstring for a config field that has none: its ``help="..."``, else the shared
    meaning of its name (``rljax.agents.fields.MEANINGS``), as ``--help`` shows them."""
    if attr.docstring is not None or not isinstance(attr.value, griffe.ExprCall):
        return
    if str(attr.value.function) not in FIELD_CALLS:
        return
    from rljax.agents.fields import MEANINGS

    text = MEANINGS.get(attr.name)
    for arg in attr.value.arguments:
        if isinstance(arg, griffe.ExprKeyword) and arg.name == "help":
            try:
                text = ast.literal_eval(str(arg.value))
            except (ValueError, SyntaxError):
                return
    if isinstance(text, str) and text:
        attr.docstring = griffe.Docstring(text, parent=attr)


def _walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


class RljaxDocs(griffe.Extension):
    """Rewrites every docstring's Sphinx roles and lists re-exports, once a package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for obj in _walk(pkg):
            _rewrite_roles(obj, pkg)
            if obj.is_module:
                _list_reexports(obj)
            elif obj.is_attribute:
                _field_help(obj)
