"""Where a command's files go: a path, or ``-`` for standard output; a write that fails is its own status.

The run (or hunt, comparison, shrink) has finished when its output is written: a failure to write it
is neither a violation (1) nor a harness failure (3), so it gets ``STATUS_OUTPUT``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

STATUS_INTERRUPTED = 130  # Ctrl-C: what was done so far is reported, then the command stops
STATUS_OUTPUT = 4  # the command finished but could not write its output (docs/command-line.md)
STDOUT = "-"


class OutputError(Exception):
    """An output file could not be written: one line, status ``STATUS_OUTPUT``."""


def to_stdout(path: str | None) -> bool:
    """``--json -``: the document goes to standard output (and the text report to standard error)."""
    return path == STDOUT


def write_text(path: str, text: str, option: str = "--json") -> None:
    """Write ``text`` to ``path`` (``-``: standard output); any OSError becomes one ``OutputError``."""
    try:
        if to_stdout(path):
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        where = "standard output" if to_stdout(path) else f"'{path}'"
        raise OutputError(f"{option}: could not write {where} ({e.strerror or e})") from None


def write_json(path: str, doc: Any, option: str = "--json") -> None:
    write_text(path, json.dumps(doc, indent=1) + "\n", option)


def check_output_paths(json_path: str | None, plot_path: str | None) -> None:
    """``--json`` and ``--plot`` checked before anything runs: a writable folder, a PNG, matplotlib
    installed; each mistake one ``ConfigError`` line (status 2)."""
    from emu.harness.config import ConfigError

    for flag, path in (("--json", json_path), ("--plot", plot_path)):
        if path and not to_stdout(path):
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
                raise ConfigError(f"{flag}: cannot write to '{path}' (no such writable directory)")
    if plot_path:
        if not plot_path.lower().endswith(".png"):
            raise ConfigError(f"--plot: the plot is a PNG, name it PATH.png (got '{plot_path}')")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("--plot needs matplotlib: pip install 'lazytlb[plot]' (or matplotlib>=3.7)") from None
