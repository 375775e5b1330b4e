"""Schemes and architecture models from outside the package.

A part is named on the command line (and in a report's configuration, so that its rerun command
and a replay load it again) by a *spec*: ``path/to/file.py:Class`` or ``package.module:Class``.
An installed package adds parts by name through the entry-point groups ``lazytlb.schemes`` and
``lazytlb.arches`` (``importlib.metadata``). Either way the class joins the tables the built-in
parts are in (``emu.strategies.STRATEGIES``/``MUTANTS``, ``emu.arch.ARCHES``/``ARCH_MUTANTS``),
under the spec or the entry point's name, together with the mutants its module defines, and
from there it is in ``list``, the configuration checks, the matrix and the report as a
built-in part is. Loading happens in the runner's process, before the CPUs fork.

Every error (no such file, an import error, no such class, not a scheme, a required hook
missing, a field or option the segment or the configuration cannot hold) is one ``ConfigError``
line. The one non-literal import of ``emu`` is here (``tests/kernel/test_surface.py`` allows it
for this module alone): it refuses a module of ``emu`` or ``stress``, which are not outside code.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from emu import arch as arches
from emu import strategies
from emu.arch.base import Arch
from emu.harness.config import ConfigError, RunConfig
from emu.kernel.catalogue import Catalogue, Declared
from emu.machine.layout import ARCH_MM_WORDS, SCHEME_PERCPU_WORDS, Layout, LayoutError, check_fits
from emu.machine.memory_model import MACHINE_MODELS
from emu.strategies.base import REQUIRED_HOOKS, Strategy

SCHEME_GROUP, ARCH_GROUP = "lazytlb.schemes", "lazytlb.arches"
_OPTIONS = {f.name for f in dataclasses.fields(RunConfig)}
P = TypeVar("P", bound=Declared)
_loaded: dict[str, ModuleType] = {}  # spec's module part -> module, each loaded once


def is_spec(name: str) -> bool:
    return ":" in name


def _module(where: str) -> ModuleType:
    if where in _loaded:
        return _loaded[where]
    if where.endswith(".py") or "/" in where:
        path = Path(where)
        if path.is_dir():
            raise ConfigError(f"'{where}': a directory, not a Python file: FILE.py:Class")
        if not path.is_file():
            raise ConfigError(f"'{where}': no such file")
        modname = f"lazytlb_part_{len(_loaded)}_{path.stem}"
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"'{where}': not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module  # dataclasses and pickling look a class's module up
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # the part's own code: whatever it raises is its error, said in one line
            del sys.modules[modname]
            raise ConfigError(f"'{where}': {type(e).__name__}: {e}") from None
    else:
        if where.split(".")[0] in ("emu", "stress"):
            raise ConfigError(f"'{where}': a module of lazytlb itself; name a built-in part by its name (see 'list')")
        try:
            module = importlib.import_module(where)
        except Exception as e:
            raise ConfigError(f"'{where}': {type(e).__name__}: {e}") from None
    _loaded[where] = module
    return module


def _class(spec: str, base: type) -> type:
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ConfigError(f"'{spec}': expected FILE.py:Class or package.module:Class")
    cls = getattr(_module(where), name, None)
    if cls is None:
        raise ConfigError(f"'{spec}': no class '{name}' in {where}")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"'{spec}': {name} is not a subclass of {base.__module__}.{base.__name__}")
    return cls


def check_scheme(cls: type[Strategy], key: str) -> None:
    """A scheme's declarations, checked before any machine is built: one line for what is wrong."""
    missing = [h for h in REQUIRED_HOOKS if h not in cls.hooks()]
    if missing:
        raise ConfigError(f"scheme '{key}' does not implement {', '.join(missing)} (every scheme must: see docs/writing-a-scheme.md)")
    try:
        check_fits(f"scheme '{key}': per-CPU fields {', '.join(cls.percpu)}", len(cls.percpu), SCHEME_PERCPU_WORDS)
    except LayoutError as e:
        raise ConfigError(str(e)) from None
    bad = [f for f in cls.pins + cls.shown if f not in cls.percpu]
    if bad:
        raise ConfigError(f"scheme '{key}': {', '.join(bad)} in pins/shown but not in percpu")
    unknown = [o for o in cls.options if o not in _OPTIONS]
    if unknown:
        raise ConfigError(f"scheme '{key}': options {', '.join(unknown)} are not run settings (RunConfig fields)")


def check_arch(cls: type[Arch], key: str) -> None:
    if cls.memory_model not in MACHINE_MODELS:
        raise ConfigError(f"architecture '{key}': memory_model '{cls.memory_model}' is not one of {', '.join(MACHINE_MODELS)}")
    if "switch_mm_irqs_off" not in vars(cls) and all("switch_mm_irqs_off" not in vars(b) for b in cls.__mro__[1:] if b is not Arch):
        raise ConfigError(f"architecture '{key}' does not implement switch_mm_irqs_off")
    try:
        check_fits(f"architecture '{key}': mm record words", cls.mm_words, ARCH_MM_WORDS)
        Layout(1, 1, 0, 1, (), arch_percpu=cls.percpu)  # its per-CPU fields, placed as the machine will place them
    except LayoutError as e:
        raise ConfigError(str(e) if str(e).startswith("architecture") else f"architecture '{key}': {e}") from None
    unknown = [o for o in cls.options if o not in _OPTIONS]
    if unknown:
        raise ConfigError(f"architecture '{key}': options {', '.join(unknown)} are not run settings (RunConfig fields)")


def _add(cls: type[Strategy] | type[Arch], key: str) -> None:
    if issubclass(cls, Arch):
        _register(cls, key, arches.CATALOGUE, check_arch, "arch")
    else:
        _register(cls, key, strategies.CATALOGUE, check_scheme, "strategy")


def _register(cls: type[P], key: str, kind: Catalogue[P], check: Callable[[type[P], str], None], cell_field: str) -> None:
    """Register ``cls`` under ``key``, with the mutants its module defines of it; each checked first."""
    check(cls, key)
    if cls.mutant_of is None and cls.name != key:  # the report, the list and the rerun command call it what the user named it
        cls.cells = tuple(
            dataclasses.replace(d, **{cell_field: key}) if getattr(d, cell_field) == cls.name else d for d in vars(cls).get("cells", ())
        )
        cls.name = key
    for other in kind.declared_in(sys.modules[cls.__module__]):
        if other is not cls and other.mutant_of is not None and issubclass(other, cls):
            check(other, other.name)
            other.mutant_of = key
            kind.register(other)
    kind.register(cls, key)


def normalized(spec: str) -> str:
    """A file spec with its path made absolute, so that the rerun command works from any directory."""
    where, _, name = spec.rpartition(":")
    if where.endswith(".py") or "/" in where:
        return f"{Path(where).resolve()}:{name}"
    return spec


def _load(spec: str, base: type[Strategy] | type[Arch]) -> str:
    kind = arches.CATALOGUE if base is Arch else strategies.CATALOGUE
    if not is_spec(spec) or spec in kind.parts or spec in kind.mutants:
        return spec
    key = normalized(spec)
    if key not in kind.parts:
        _add(_class(key, base), key)
    return key


def load_scheme(spec: str) -> str:
    """Make ``spec`` (a scheme's name, FILE.py:Class or module:Class) known; its name in the tables."""
    return _load(spec, Strategy)


def load_arch(spec: str) -> str:
    return _load(spec, Arch)


_installed = False


def load_installed() -> None:
    """The parts installed packages add through the entry-point groups, each under its entry's name."""
    global _installed
    if _installed:
        return
    _installed = True
    for ep in importlib.metadata.entry_points(group=SCHEME_GROUP):
        if ep.name not in strategies.STRATEGIES:
            _add(_entry(ep, Strategy), ep.name)
    for ep in importlib.metadata.entry_points(group=ARCH_GROUP):
        if ep.name not in arches.ARCHES:
            _add(_entry(ep, Arch), ep.name)


def _entry(ep: importlib.metadata.EntryPoint, base: type) -> type:
    try:
        cls = ep.load()
    except Exception as e:  # the package's own code: its error, said in one line
        raise ConfigError(f"entry point '{ep.name}' ({ep.group}): {type(e).__name__}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"entry point '{ep.name}' ({ep.group}): {ep.value} is not a subclass of {base.__name__}")
    return cls


def load_config(cfg: RunConfig) -> RunConfig:
    """Load whatever parts a configuration names by spec (a report's, a replay's, a cell's); the
    configuration with each spec as the tables know it (a file's path absolute)."""
    load_installed()
    strategy, arch = load_scheme(cfg.strategy), load_arch(cfg.arch)
    return cfg if (strategy, arch) == (cfg.strategy, cfg.arch) else dataclasses.replace(cfg, strategy=strategy, arch=arch)
