"""docs/reading-the-report.md lists the oracle's violation kinds: every one, in the oracle's order."""

from __future__ import annotations

import re
from pathlib import Path

from emu.checks.oracle import KINDS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reading-the-report.md"


def documented_kinds(text: str) -> list[str]:
    """The first column of the page's kinds table: rows that start with a back-quoted kind."""
    return re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE)


def test_the_page_lists_every_kind_of_the_oracle_in_its_order() -> None:
    assert documented_kinds(PAGE.read_text()) == list(KINDS)


def test_a_kind_missing_from_the_page_is_seen() -> None:
    text = PAGE.read_text()
    cut = "\n".join(line for line in text.splitlines() if not line.startswith("| `missed_flush`"))
    assert documented_kinds(cut) != list(KINDS)
