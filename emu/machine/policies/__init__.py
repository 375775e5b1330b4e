"""The scheduling policies of the deterministic modes, one module each (``emu.machine.policy`` is
their interface). A module here with a ``Policy`` subclass that has a ``name`` is a policy: the
registry is derived by scanning this package, so a new policy is one new file."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from emu.machine.policy import Policy


@cache
def registry() -> dict[str, type[Policy]]:
    """Every policy of this package, by name."""
    found: dict[str, type[Policy]] = {}
    for mod in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Policy) and value.name and value.__module__ == module.__name__:
                assert value.name not in found, f"two policies named {value.name}"
                found[value.name] = value
    return found


def sched_choices() -> tuple[str, ...]:
    """The policies ``--sched`` names (the others are chosen another way: replay by ``--replay``)."""
    return tuple(sorted(name for name, cls in registry().items() if cls.selectable))


def policy_class(sched: str, follow_schedule: bool) -> type[Policy]:
    """The policy that steers a run of ``--sched sched``: the one that follows a schedule, when one is given."""
    if follow_schedule:
        return next(cls for cls in registry().values() if cls.follows_schedule)
    return registry()[sched]
