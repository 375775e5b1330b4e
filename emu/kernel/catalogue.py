"""The catalogue of one kind of part (schemes, or architecture models): what a package declares.

Each module of a part package is scanned (``pkgutil``) and every subclass of the kind's base
class it defines with a ``name`` is registered: a part in ``parts``, a deliberately broken
variant (``mutant_of`` set) in ``mutants``. Parts from outside the package join the same tables
(``emu.harness.plugins``), so nothing else names a part.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import ClassVar, Generic, Protocol, TypeVar

from emu.kernel.protocols import CellDecl


class Declared(Protocol):
    name: ClassVar[str]
    mutant_of: ClassVar[str | None]
    cells: ClassVar[tuple[CellDecl, ...]]


P = TypeVar("P", bound=Declared)


class Catalogue(Generic[P]):
    def __init__(self, base: type[P], parts: dict[str, type[P]], mutants: dict[str, type[P]]) -> None:
        self.base, self.parts, self.mutants = base, parts, mutants

    def declared_in(self, module: ModuleType) -> list[type[P]]:
        """The parts and mutants a module defines (not those it imports), in source order."""
        return [
            c
            for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, self.base) and c.__module__ == module.__name__ and c.name
        ]

    def register(self, cls: type[P], key: str | None = None) -> None:
        (self.mutants if cls.mutant_of is not None else self.parts)[key or cls.name] = cls

    def scan(self, path: Iterable[str], submodule: Callable[[str], ModuleType]) -> None:
        """Register what every module of the package at ``path`` but its ``base`` module declares;
        ``submodule`` imports one by name (the package's own import, which the layer test can see)."""
        for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
            if info.name != "base":
                for cls in self.declared_in(submodule(info.name)):
                    self.register(cls)
