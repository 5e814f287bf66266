"""The plugin manager: entry-point loading, registries with lazy factories, broken-plugin isolation, tracing.

Environment switches:

* ``VDPM_LOAD_PLUGINS=a,b`` loads only the entry points named ``a`` and ``b`` (``""`` loads none; the built-ins
  are entry points too, so they obey it).
* ``VDPM_TRACE_PLUGINS=1`` prints every hook call and its result to stderr.

Plugins compose through the host: a plugin creates another registered plugin by kind, id and options with
:meth:`vdpm_harness.interfaces.Plugin.create_plugin` (never by importing its class), and the run records the
id, version and options of every plugin so created (``Plugin.provenance``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "vdpm_harness"


def _declared_kinds() -> dict[str, str]:
    """Plugin kinds as the hookspecs declare them (``@kind``): kind -> ``"module:BaseClass"``, in hookspec order."""
    return {
        name.removeprefix("register_"): function.plugin_base
        for name, function in vars(hookspecs).items()
        if name.startswith("register_") and getattr(function, "plugin_base", None)
    }


#: kind -> the base class its plugins must be instances of, read off the registration hookspecs
KIND_BASES = _declared_kinds()
KINDS = tuple(KIND_BASES)
#: the host creating a plugin right now (so that a plugin's ``__init__`` can create the plugins it is made of)
_creating: ContextVar[Host | None] = ContextVar("vdpm_creating_host", default=None)


class PluginError(Exception):
    """A plugin could not be found, loaded or configured. The message says which and why."""


@dataclass
class Entry:
    """One registered model, benchmark, generator, judge or reporter."""

    id: str
    kind: str
    factory: Callable[..., Any] | str
    aliases: tuple[str, ...] = ()
    description: str = ""
    plugin: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)

    def load_class(self):
        """Resolve a lazy ``"module:attr"`` factory. Import errors name the plugin and keep the traceback."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported with its cause
            raise PluginError(
                f"{self.kind[:-1]} '{self.id}' (plugin '{self.plugin}') failed to load {self.factory}: "
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            ) from exc
        return obj

    def base_class(self) -> type:
        module_name, _, name = KIND_BASES[self.kind].partition(":")
        return getattr(importlib.import_module(module_name), name)

    def create(self, options: dict | None = None):
        """Build the plugin object with validated options (unknown keys are rejected).

        A class that lacks a method its kind requires, or is not of its kind's base class, fails here, naming it.
        """
        cls = self.load_class()
        what = f"{self.kind[:-1]} '{self.id}' (plugin '{self.plugin}')"
        base = self.base_class()
        if inspect.isclass(cls):
            if not issubclass(cls, base):
                raise PluginError(f"{what}: {cls.__name__} must subclass vdpm_harness.{base.__name__}")
            if inspect.isabstract(cls):
                missing = ", ".join(sorted(cls.__abstractmethods__))
                raise PluginError(f"{what}: {cls.__name__} does not implement {missing}, which every "
                                  f"{base.__name__} must (see docs/plugins.md)")  # fmt: skip
        from pydantic import ValidationError

        from .config import checked_options, describe_option_errors, redact, secret_values

        invalid = f"invalid options for {self.kind[:-1]} '{self.id}'"
        options = options or {}
        try:
            # command-line texts read into the declared types, then everything checked strictly; the messages never
            # show a secret (pydantic's own would print ``input_value='sk-...'``)
            options = checked_options(getattr(cls, "Options", None), options) if inspect.isclass(cls) else options
            obj = cls(options)
        except PluginError:
            raise
        except ValidationError as exc:
            raise PluginError(f"{invalid}:\n{describe_option_errors(exc, options)}") from None
        except Exception as exc:
            message = f"{invalid}: {exc}"
            secrets = secret_values(options)
            if redact(message, secrets) != message:  # a secret in the message: neither it nor the chain is shown
                raise PluginError(redact(message, secrets)) from None
            raise PluginError(message) from exc
        if not isinstance(obj, base):
            raise PluginError(f"{what}: its factory returned {type(obj).__qualname__}, not a {base.__name__}")
        if getattr(obj, "id", None) in (None, ""):
            obj.id = self.id
        return obj


class Registry:
    """Entries of one kind, looked up by id or alias, with "did you mean" for unknown names.

    A registration may name groups it belongs to (``register(id, factory, group="4dbench")``, or a tuple of names):
    a group name stands for all its members, in registration order, where a run selects benchmarks or models
    (:meth:`expand`; the run configuration expands it), while :meth:`get` (one plugin) rejects it, naming the
    members. A group name that is also an id or alias is a conflict, reported when it is selected.
    """

    def __init__(self, kind: str, broken: dict[str, str]):
        self.kind = kind
        self.entries: dict[str, Entry] = {}
        self.names: dict[str, str] = {}
        self.conflicts: dict[str, str] = {}
        self.groups: dict[str, list[str]] = {}
        self._broken = broken

    def add(self, entry: Entry) -> None:
        """Add an entry; a name (id or alias) claimed twice becomes a conflict, reported when it is selected."""
        first = self.entries.setdefault(entry.id, entry)
        for name in (entry.id, *entry.aliases):
            owner = self.names.setdefault(name, entry.id)
            if owner != entry.id or first is not entry:
                self.conflicts[name] = (
                    f"{self.kind[:-1]} name '{name}' is registered by both plugin "
                    f"'{self.entries[owner].plugin}' and plugin '{entry.plugin}'; uninstall one or restrict "
                    "loading with VDPM_LOAD_PLUGINS"
                )
        groups = entry.capabilities.get("group") or ()
        for group in (groups,) if isinstance(groups, str) else groups:
            members = self.groups.setdefault(group, [])
            if entry.id not in members:
                members.append(entry.id)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def expand(self, name: str) -> list[str]:
        """The names a selection of ``name`` stands for: the members of a group, else ``[name]`` (an unknown name
        is left for :meth:`get` to report)."""
        if name not in self.groups:
            return [name]
        if name in self.names:
            raise PluginError(f"{self.kind[:-1]} name '{name}' is both a {self.kind[:-1]} of plugin "
                              f"'{self.entries[self.names[name]].plugin}' and a group of {self.kind} "
                              f"({', '.join(self.groups[name])})")  # fmt: skip
        return list(self.groups[name])

    def __iter__(self):
        return iter(self.entries.values())

    def get(self, name: str) -> Entry:
        if name in self.conflicts:
            raise PluginError(self.conflicts[name])
        if name in self.names:
            return self.entries[self.names[name]]
        if name in self.groups:
            raise PluginError(f"'{name}' is a group of {self.kind} ({', '.join(self.groups[name])}): a run selects "
                              "all of them by this name; here name one of them")  # fmt: skip
        message = f"unknown {self.kind[:-1]} '{name}'"
        close = difflib.get_close_matches(name, [*self.names, *self.groups], n=3, cutoff=0.5)
        if close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        else:
            message += f"; available: {', '.join(sorted(self.entries)) or '(none)'}"
        if self._broken:
            message += "\nThese plugins failed to load and may provide it:\n" + "\n".join(
                f"  {plugin}: {error.strip().splitlines()[-1]}" for plugin, error in self._broken.items()
            )
            message += "\n(run `vdpm-harness plugins` for the full tracebacks)"
        raise PluginError(message)


@dataclass
class LoadedPlugin:
    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: list[str]


class Host:
    """A plugin manager with every entry point loaded and the registries filled."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.broken: dict[str, str] = {}
        self.plugins: dict[str, LoadedPlugin] = {}
        self._trace: Callable[[str], Any] | None = None
        if os.environ.get("VDPM_TRACE_PLUGINS"):
            self.enable_tracing()
        if load_entry_points:
            self._load_entry_points()
        self._registries: dict[str, Registry] | None = None

    # -- loading -------------------------------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        wanted = os.environ.get("VDPM_LOAD_PLUGINS")
        allowed = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        seen = set()
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen or (allowed is not None and ep.name not in allowed):
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except Exception:  # noqa: BLE001 - isolate broken plugins; report them by name
                self.broken[ep.name] = f"{ep.value} ({dist.name if dist else '?'}): {traceback.format_exc()}"
                continue
            self._record(ep.name, module, dist.name if dist else None, dist.version if dist else None)

    def _record(self, name: str, module: Any, dist: str | None, version: str | None) -> None:
        hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        self.plugins[name] = LoadedPlugin(name, getattr(module, "__name__", repr(module)), dist, version, hooks)

    def register(self, plugin: Any, name: str) -> None:
        """Register an in-process plugin (tests, notebooks). Registries are rebuilt on next use."""
        self.pm.register(plugin, name=name)
        self._record(name, plugin, None, None)
        self._registries = None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._registries = None

    def enable_tracing(self, write: Callable[[str], Any] | None = None) -> None:
        write = write or (lambda line: print(line, file=sys.stderr))
        self._trace = write

        def before(hook_name, hook_impls, kwargs):
            names = ", ".join(self.pm.get_name(impl.plugin) or "?" for impl in hook_impls)
            write(f"[vdpm trace] {hook_name}({', '.join(kwargs)}) -> plugins: {names}")

        def after(outcome, hook_name, hook_impls, kwargs):
            try:
                result = outcome.get_result()
            except BaseException as exc:  # noqa: BLE001 - tracing reports, never swallows
                write(f"[vdpm trace] {hook_name} raised {type(exc).__name__}: {exc}")
                return
            write(f"[vdpm trace] {hook_name} returned {result!r}")

        self.pm.add_hookcall_monitoring(before, after)

    # -- registries ------------------------------------------------------------------------------------------------

    def registry(self, kind: str) -> Registry:
        if kind not in KINDS:
            raise PluginError(f"unknown plugin kind '{kind}'; expected one of {', '.join(KINDS)}")
        if self._registries is None:
            self._registries = self._collect()
        return self._registries[kind]

    def _collect(self) -> dict[str, Registry]:
        registries = {kind: Registry(kind, self.broken) for kind in KINDS}
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"register_{kind}")
            for impl in hook.get_hookimpls():
                plugin_name = self.pm.get_name(impl.plugin) or "?"

                def register(id, factory, *, aliases=(), description="", _plugin=plugin_name, _kind=kind, **caps):
                    if isinstance(aliases, str):
                        aliases = (aliases,)
                    registries[_kind].add(Entry(id, _kind, factory, tuple(aliases), description, _plugin, dict(caps)))

                # each implementation is called on its own, so one that raises cannot hide the others
                before = len(registries[kind].entries)
                try:
                    call_pruned(impl, register=register)
                except Exception:  # noqa: BLE001 - reported by `vdpm-harness plugins`
                    self.broken[plugin_name] = f"register_{kind}: {traceback.format_exc()}"
                if self._trace:
                    added = list(registries[kind].entries)[before:]
                    self._trace(f"[vdpm trace] register_{kind}(register) -> plugin {plugin_name} registered {added}")
        return registries

    def get(self, kind: str, name: str) -> Entry:
        return self.registry(kind).get(name)

    def create(self, kind: str, name: str, options: dict | None = None):
        """Create a registered plugin by kind, id (or alias) and options.

        This is the one way to make a plugin object, for the CLI and for plugins made of other plugins
        (``Plugin.create_plugin``). The object remembers what created it (``registration``), for the run record.
        """
        entry = self.get(kind, name)
        token = _creating.set(self)
        try:
            obj = entry.create(options)
        finally:
            _creating.reset(token)
        loaded = self.plugins.get(entry.plugin)
        obj.registration = {"kind": kind, "id": entry.id, "plugin": entry.plugin,
                            "distribution": loaded.distribution if loaded else None,
                            "distribution_version": loaded.version if loaded else None}  # fmt: skip
        obj.host = self
        return obj

    def add_commands(self, cli) -> None:
        """Call every ``register_commands`` implementation on its own: one that raises is reported as broken
        (``vdpm-harness plugins`` shows it) and the other plugins' commands, and the built-in ones, still work."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            plugin_name = self.pm.get_name(impl.plugin) or "?"
            try:
                call_pruned(impl, cli=cli)
            except Exception:  # noqa: BLE001 - reported by `vdpm-harness plugins`
                self.broken[plugin_name] = f"register_commands: {traceback.format_exc()}"
            if self._trace:
                self._trace(f"[vdpm trace] register_commands(cli) -> plugin {plugin_name}")


def call_pruned(impl: pluggy.HookImpl, **kwargs):
    """Call one hook implementation with only the arguments it declares, as pluggy does for a hook call
    (so a hook can gain arguments without breaking the plugins that do not take them)."""
    return impl.function(*[kwargs[name] for name in impl.argnames])


def creating_host() -> Host | None:
    """The host whose ``create`` is running (``None`` outside of one)."""
    return _creating.get()


_host: Host | None = None


def get_host() -> Host:
    """The process-wide host, created on first use."""
    global _host
    if _host is None:
        _host = Host()
    return _host


def reset_host() -> None:
    """Forget the process-wide host (tests; after installing a plugin in-process)."""
    global _host
    _host = None
