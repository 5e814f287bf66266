"""Every hook is documented with its exact signature and has a test (the datasette rule)."""

import inspect
import re
from pathlib import Path

from vdpm_harness import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = {name: fn for name, fn in vars(hookspecs).items() if hasattr(fn, "vdpm_harness_spec")}


def test_there_are_hooks():
    assert {
        "register_models",
        "register_benchmarks",
        "register_generators",
        "register_judges",
        "register_reporters",
        "register_commands",
    } <= set(HOOKS)


def test_every_hook_is_documented_with_its_signature():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    headings = re.findall(r"^### (\w+)\((.*)\)$", docs, flags=re.M)
    documented = {name: args for name, args in headings}
    for name, fn in HOOKS.items():
        assert name in documented, f"hook {name} is not documented in docs/plugins.md"
        signature = ", ".join(inspect.signature(fn).parameters)
        assert documented[name] == signature, (
            f"docs/plugins.md documents {name}({documented[name]}), code has ({signature})"
        )
    assert set(documented) <= set(HOOKS), (
        f"docs/plugins.md documents hooks that do not exist: {set(documented) - set(HOOKS)}"
    )


def test_every_hook_has_a_test():
    source = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for name in HOOKS:
        assert re.search(rf"\btest_hook_{name}\b", source), f"hook {name} has no test_hook_{name}"


def test_every_hook_has_a_docstring():
    for name, fn in HOOKS.items():
        assert (fn.__doc__ or "").strip(), f"hook {name} has no docstring"
