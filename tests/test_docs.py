"""The documentation stays true: docs/cli.md matches the click commands, relative links resolve.

Refresh docs/cli.md after changing a command: ``python docs/gen_cli_reference.py``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: ``[text](target)`` (images ``![alt](target)`` too) and ``[ref]: target`` definitions.
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _gen_module():
    spec = importlib.util.spec_from_file_location("simhsi_gen_cli_reference", DOCS / "gen_cli_reference.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def markdown_files() -> list[Path]:
    """README.md, every page under docs/ and the examples' READMEs."""
    return sorted([ROOT / "README.md", *DOCS.rglob("*.md"), *(ROOT / "examples").rglob("*.md")])


def relative_links(text: str) -> list[str]:
    """Link targets of a Markdown text that are paths in this repository (no URL, no pure #anchor)."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    out = []
    for target in [*INLINE.findall(text), *REFDEF.findall(text)]:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "//")):
            continue  # http:, https:, mailto:, ... and in-page anchors
        out.append(target)
    return out


def test_cli_reference_is_current():
    mod = _gen_module()
    expected = mod.render()
    current = (DOCS / "cli.md").read_text() if (DOCS / "cli.md").exists() else ""
    assert current == expected, ("docs/cli.md is out of date with the click commands; refresh it with "
                                 "`python docs/gen_cli_reference.py` and commit the result")


def test_cli_reference_covers_every_command():
    from simhsi.cli.main import COMMANDS

    text = (DOCS / "cli.md").read_text()
    for name in COMMANDS:
        assert f"\n## simhsi {name}\n" in text, name
        assert f"Usage: simhsi {name} " in text, name
    # groups are walked too
    assert "\n## simhsi sensors list\n" in text and "\n## simhsi sensors show\n" in text


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    mod = _gen_module()
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n")
    assert mod.main(["--check", "--out", str(stale)]) == 1
    assert "python docs/gen_cli_reference.py" in capsys.readouterr().err
    assert mod.main(["--out", str(stale)]) == 0
    assert mod.main(["--check", "--out", str(stale)]) == 0


def test_link_finder():
    text = ("see [a](a.md), [b](sub/b.md#sec) ![img](x.png) [web](https://x.org) [anchor](#top)\n"
            "[ref]: ../c.md\n```\n[not](code.md)\n```\n`[span](span.md)`\n")
    assert relative_links(text) == ["a.md", "sub/b.md#sec", "x.png", "../c.md"]


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(md):
    broken = []
    for target in relative_links(md.read_text()):
        path = target.split("#", 1)[0]
        if path and not (md.parent / path).exists():
            broken.append(target)
    assert not broken, f"{md.relative_to(ROOT)} links to missing files: {broken}"
