"""The documentation names only commands and options that exist: every ``python -m stress`` or
``lazytlb`` command in a code block or inline code span of the README, docs/ and the changelog
is parsed by the real parser, without running anything. Blocks tagged ``text`` are program
output (some of it wrong on purpose) and are not checked."""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from stress.cli import HelpShown, UsageError, build_parser, preload

ROOT = Path(__file__).parent.parent.parent
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "&", "2>", "2>&1"}
PROGRAMS = {("python", "-m", "stress"): "stress", ("python3", "-m", "stress"): "stress", ("lazytlb",): "stress",
            ("python", "-m", "stress.instructions"): "instructions"}  # fmt: skip


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    """(program, argv) for each command in ``text``'s code: fenced blocks not tagged ``text``,
    and inline spans. A line may carry a ``$`` prompt, ``&&`` chains, pipes, a trailing comment
    and a ``\\`` continuation; what comes before the program (``timeout 60``, ``VAR=x``) is skipped."""
    snippets = []
    for lang, body in FENCE.findall(text):
        if lang.strip() != "text":
            snippets += body.replace("\\\n", " ").splitlines()
    prose = FENCE.sub("", text)
    # inline: a span that runs something (the program's bare name in prose is not a command)
    runs = ("python -m stress ", "python3 -m stress ", "python -m stress.instructions ", "lazytlb ")
    snippets += [s for s in INLINE.findall(prose) if s.startswith(runs)]
    found = []
    for line in snippets:
        line = line.strip().removeprefix("$ ")
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # not shell (a table cell with a lone quote)
        for i in range(len(words)):
            for prefix, program in PROGRAMS.items():
                if tuple(words[i : i + len(prefix)]) == prefix:
                    argv = []
                    for w in words[i + len(prefix) :]:
                        if w in OPERATORS or w.startswith((">", "2>", "|")):
                            break
                        argv.append(w)
                    found.append((program, argv))
    return found


def check_stress(argv: list[str]) -> None:
    """Parse as ``main`` would; raise ``UsageError`` for an unknown option or a bad value. A part
    named by spec (``examples/...``, from the repository's root) is loaded first, as ``main`` does."""
    with contextlib.chdir(ROOT):
        preload(argv)
    try:
        build_parser().parse_args(argv)
    except HelpShown:
        pass  # --help, --version


def instructions_options() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "stress.instructions", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"(--[a-z][a-z-]*)", out.stdout))


ALL = [(page, program, argv) for page in PAGES for program, argv in commands_in(page.read_text())]


def test_the_pages_have_commands_to_check() -> None:
    assert len(ALL) >= 30
    assert {p.name for p, _, _ in ALL} >= {"README.md", "command-line.md", "race-hunting.md", "speed.md", "reliability.md"}


@pytest.mark.parametrize(("page", "program", "argv"), ALL, ids=[f"{p.name}: {' '.join(a)}"[:90] for p, _, a in ALL])
def test_every_command_in_the_docs_parses(page: Path, program: str, argv: list[str]) -> None:
    if program == "stress":
        try:
            check_stress(argv)
        except UsageError as e:
            pytest.fail(f"{page.name}: python -m stress {' '.join(argv)}: {e}")
    else:
        known = instructions_options()
        unknown = [a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0] not in known]
        assert not unknown, f"{page.name}: python -m stress.instructions {' '.join(argv)}: no option {unknown}"


def test_the_check_fails_on_an_option_that_does_not_exist() -> None:
    doc = "```sh\npython -m stress run --cpus 4 --no-such-option\n```\nand `lazytlb compare --cpus 2,8 --quiet`\n"
    (first, argv), (second, argv2) = commands_in(doc)
    with pytest.raises(UsageError, match="unrecognized arguments: --no-such-option"):
        check_stress(argv)
    check_stress(argv2)  # a real one passes
    assert commands_in("```text\n$ python -m stress run --no-such-option\n```\n") == []
    chained = commands_in('```sh\npip install ".[test]" && python -m stress run --cpus 32 | tee out  # comment\n```\n')
    assert chained == [("stress", ["run", "--cpus", "32"])]


def test_the_readme_is_short_and_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name}" in readme, f"the README does not link docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name}: link to {target}"
