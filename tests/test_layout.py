"""The repository's layout and the import rules of the plugin API, checked on the source (AST), not by convention.

* The top level is the one the user's card names; ``plugins/`` and ``training/`` install as ``vdpm_harness_plugins``
  and ``vdpm_harness_training`` and are imported from these folders.
* The core imports no plugin and no trainer.
* A built-in plugin imports the core only through its public root (``from vdpm_harness import X``) and never reaches
  into another plugin; the example third-party plugin follows the same rule.
* A plugin package's ``__init__.py`` holds only its docstring, imports and hooks (so registering never imports the
  plugin's heavy modules).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"vdpm_harness": ROOT / "vdpm_harness", "vdpm_harness_plugins": ROOT / "plugins",
           "vdpm_harness_training": ROOT / "training"}  # fmt: skip
PLUGIN_PACKAGE = "vdpm_harness_plugins"


def module_name(path: Path) -> str:
    """The import name of a source file of one of the three packages."""
    for package, folder in FOLDERS.items():
        if path.is_relative_to(folder):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def imports(path: Path, source: str | None = None) -> list[tuple[int, str, list[str]]]:
    """``(line, absolute module, imported names)`` of every import in a file (or in ``source`` given as the
    content of ``path``), relative ones resolved."""
    name = module_name(path) if not path.is_relative_to(ROOT / "examples") else ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    source = path.read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def plugin_roots() -> list[str]:
    """The module of every built-in plugin: the targets of the entry points in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return sorted({target.partition(":")[0] for target in project["project"]["entry-points"]["vdpm_harness"].values()})


def owning_plugin(module: str, roots: list[str]) -> str | None:
    matches = [root for root in roots if module == root or module.startswith(root + ".")]
    return max(matches, key=len) if matches else None


def test_top_level_is_the_cards():
    for path in ("pyproject.toml", "vdpm_harness", "plugins/models", "plugins/benchmarks", "plugins/generators",
                 "training", "tests"):  # fmt: skip
        assert (ROOT / path).exists(), f"{path} is missing from the top level"
    assert "/results/" in (ROOT / ".gitignore").read_text().split(), "results/ (run output) must be git-ignored"
    for kind in ("models", "benchmarks", "generators", "judges", "reporters"):
        assert (ROOT / "plugins" / kind / "__init__.py").is_file()


def test_installed_packages_come_from_the_repository_folders():
    for package, folder in FOLDERS.items():
        module = importlib.import_module(package)
        assert Path(module.__file__).resolve().parent == folder.resolve(), (package, module.__file__)
    # sub-packages too (the editable install maps the folder, not a copy)
    dsr = importlib.import_module("vdpm_harness_plugins.benchmarks.dsr")
    assert Path(dsr.__file__).resolve().is_relative_to(ROOT / "plugins" / "benchmarks" / "dsr")


def test_every_entry_point_is_an_importable_plugin_module():
    for root in plugin_roots():
        assert root.startswith(PLUGIN_PACKAGE + "."), root
        importlib.import_module(root)


def test_the_core_imports_no_plugin_and_no_trainer():
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(FOLDERS["vdpm_harness"].rglob("*.py"))
        for line, module, _ in imports(path)
        if module.split(".")[0] in ("vdpm_harness_plugins", "vdpm_harness_training")
    ]
    assert not offending, "\n".join(offending)


def check_plugin_imports(path: Path, own: str | None, source: str | None = None) -> list[str]:
    """Violations of the plugin import rules in one file whose plugin is ``own``."""
    problems = []
    for line, module, names in imports(path, source):
        top = module.split(".")[0]
        where = f"{path.relative_to(ROOT)}:{line}"
        if top == "vdpm_harness" and module != "vdpm_harness":
            problems.append(
                f"{where} imports the core module {module}; import from the root: from vdpm_harness import ..."
            )
        elif top == "vdpm_harness":
            import vdpm_harness

            private = [name for name in names if name not in vdpm_harness.__all__]
            if private:
                problems.append(f"{where} imports {private} from vdpm_harness, which the public API does not export")
        elif top == "vdpm_harness_training":
            problems.append(f"{where} imports the trainer ({module}); training imports plugins, never the reverse")
        elif top == PLUGIN_PACKAGE and owning_plugin(module, plugin_roots()) != own:
            problems.append(f"{where} imports {module}, which is not part of its own plugin ({own})")
    return problems


def test_plugins_import_only_the_public_api_and_their_own_package():
    roots = plugin_roots()
    problems = []
    for path in sorted(FOLDERS[PLUGIN_PACKAGE].rglob("*.py")):
        problems += check_plugin_imports(path, owning_plugin(module_name(path), roots))
    assert not problems, "\n".join(problems)


def test_the_example_third_party_plugin_uses_only_the_public_api():
    folder = ROOT / "examples" / "vdpm-harness-example"
    files = [p for p in folder.rglob("*.py") if "build" not in p.parts]
    assert files
    problems = []
    for path in files:
        problems += check_plugin_imports(path, own=None)
    assert not problems, "\n".join(problems)


def test_the_import_checker_catches_each_kind_of_violation():
    """The rules above would pass vacuously if the walker saw nothing: feed it one line of each violation, as the
    content of a (not existing) module of the qwen25vl plugin, relative imports included."""
    probe = FOLDERS[PLUGIN_PACKAGE] / "models" / "qwen25vl" / "_probe.py"
    source = ("from vdpm_harness.store import write_atomic\nfrom vdpm_harness import _EXPORTS\n"
              "from ...benchmarks.dsr import benchmark\nimport vdpm_harness_training\n"
              "from vdpm_harness import Model, hookimpl\nfrom . import attention\n")  # fmt: skip
    problems = check_plugin_imports(probe, "vdpm_harness_plugins.models.qwen25vl", source)
    assert len(problems) == 4, problems
    assert "core module vdpm_harness.store" in problems[0] and "_EXPORTS" in problems[1]
    assert "benchmarks.dsr" in problems[2] and "trainer" in problems[3]


def _is_hook(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef) and any(
        (isinstance(d, ast.Name) and d.id == "hookimpl") or (isinstance(d, ast.Attribute) and d.attr == "hookimpl")
        for d in node.decorator_list
    )


@pytest.mark.parametrize("root", plugin_roots())
def test_a_plugin_packages_init_holds_only_its_hooks(root):
    path = FOLDERS[PLUGIN_PACKAGE].joinpath(*root.split(".")[1:])
    init = path / "__init__.py"
    if not init.is_file():  # a single-module plugin
        return
    body = ast.parse(init.read_text()).body
    allowed = (ast.Import, ast.ImportFrom)
    for node in body[1:] if body and isinstance(body[0], ast.Expr) else body:
        assert isinstance(node, allowed) or _is_hook(node), (
            f"{init.relative_to(ROOT)}:{node.lineno}: a plugin package's __init__.py holds only its hooks "
            "(put this in a module beside it)"
        )
    # module-level imports run when the entry point loads: only the public API (a hook may import lazily inside)
    for node in body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            module = getattr(node, "module", None) or node.names[0].name
            assert node.level == 0 if isinstance(node, ast.ImportFrom) else True, f"{init}: relative import at load"
            assert module in ("vdpm_harness", "__future__"), (
                f"{init.relative_to(ROOT)} imports {module} when it loads; register a lazy 'module:Class' factory"
            )
    # factories given as strings name modules of this package, so listing plugins imports none of them
    for factory in re.findall(r'"(vdpm_harness_plugins\.[\w.]+):\w+', init.read_text()):
        assert owning_plugin(factory, plugin_roots()) == root, f"{init}: factory {factory} is outside the plugin"
