"""The documentation: the README stays a front page, every relative link and picture in README.md,
CHANGELOG.md and docs/**/*.md points at a file of the repository (and at a heading there, for
links with an anchor), and the README and docs name no tracker numbers and no machine paths.
Pure text checks: no package import, milliseconds."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 10_000
# The README's test command, which CI runs (.ci/run) and which must stay findable.
TEST_COMMAND = "bash .ci/test"


def _docs() -> list:
    return sorted((ROOT / "docs").rglob("*.md"))


def _linked_files() -> list:
    files = [README, *_docs()]
    changelog = ROOT / "CHANGELOG.md"
    return files + [changelog] if changelog.exists() else files


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


_FENCE = re.compile(r"^(\s*)(```|~~~)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (kept as blank space so that
    nothing joins across them)."""
    return _without_fences(text, lambda line: re.sub(r"`[^`\n]*`", " ", line))


def _without_fences(text: str, keep=lambda line: line) -> str:
    """The text with the lines of fenced code blocks (and their fences) blank; ``keep`` maps
    every other line."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else keep(line))
    return "\n".join(out)


# [text](target) and ![alt](target), the target up to whitespace or ')' (an optional "title" after).
_MD_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def _targets(path: Path) -> list:
    prose = _prose(path.read_text(encoding="utf-8"))
    return [m.group(1) for m in _MD_LINK.finditer(prose)] + [m.group(1) for m in _HTML_LINK.finditer(prose)]


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)          # links: their text
    text = re.sub(r"<[^>]+>", "", text)                              # inline HTML
    out = []
    for ch in text.strip().lower():
        if ch in " -_" or unicodedata.category(ch)[0] in "LN":
            out.append("-" if ch == " " else ch)
    return "".join(out)


def _anchors(path: Path) -> set:
    seen: dict = {}
    anchors = set()
    for line in _without_fences(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    for m in re.finditer(r"""<a\s+(?:name|id)\s*=\s*["']([^"']+)["']""", path.read_text(encoding="utf-8")):
        anchors.add(m.group(1))
    return anchors


def test_readme_is_a_front_page():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; at most {README_MAX_BYTES} (move detail into docs/)"
    text = README.read_text(encoding="utf-8")
    assert TEST_COMMAND in text, f"README.md must show the test command {TEST_COMMAND!r} (CI runs it)"
    assert "bash .ci/setup && deepshop stylize photo.jpg" in text


@pytest.mark.parametrize("path", _linked_files(), ids=_rel)
def test_relative_links_and_pictures_resolve(path):
    problems = []
    for target in _targets(path):
        if _is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = path if not file_part else (path.parent / unquote(file_part)).resolve()
        where = f"{_rel(path)}: {target}"
        try:
            dest.relative_to(ROOT)
        except ValueError:
            problems.append(f"{where} points outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{where} -> no such file")
            continue
        if anchor and dest.suffix == ".md" and dest.is_file() and anchor not in _anchors(dest):
            problems.append(f"{where} -> no heading with anchor #{anchor} in {_rel(dest)}")
    assert not problems, "broken links:\n" + "\n".join(problems)


# "issue 12", "issues 3", "Issue #12", "PR 7", and a bare "#12" (not inside a word, a URL or an entity).
_TRACKER = re.compile(r"\b(?:issues?|pr|pull request)\s*#?\d+|(?<![\w&#/])#\d+\b", re.IGNORECASE)
# Absolute paths of a particular machine, and the team's folders beside the checkout.
_MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|tmp|home|mnt|scratch|Users)/|\.\./shared/")


@pytest.mark.parametrize("path", [README, *_docs()], ids=_rel)
def test_no_tracker_numbers_or_machine_paths(path):
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for pattern, what in ((_TRACKER, "tracker number"), (_MACHINE_PATH, "machine path")):
            m = pattern.search(line)
            if m:
                problems.append(f"{_rel(path)}:{number}: {what} {m.group(0)!r}")
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_should():
    """The patterns themselves, on hand-written cases."""
    assert _TRACKER.search("fixed in issue 12") and _TRACKER.search("see #14") and _TRACKER.search("Issue #3")
    assert not _TRACKER.search("[x](guide.md#tiles) C++17 fp16 #include 2^20 &#8212;")
    assert _MACHINE_PATH.search("in /work/shared/styles/") and _MACHINE_PATH.search("cd /root/x")
    assert _MACHINE_PATH.search("--styles ../shared/styles/a.jpg")
    assert not _MACHINE_PATH.search("~/.cache/deepshop/gatys and docs/images/x.jpg")
    assert _slug("MSG-Net: `deepshop-train msgnet`") == "msg-net-deepshop-train-msgnet"
    assert _slug("Against the tutorial's network") == "against-the-tutorials-network"
    assert _targets_of("see [a](x.md#b) and ![p](images/p.jpg) `[no](code.md)` <img src=\"q.png\">") == \
        ["x.md#b", "images/p.jpg", "q.png"]


def _targets_of(text: str) -> list:
    prose = _prose(text)
    return [m.group(1) for m in _MD_LINK.finditer(prose)] + [m.group(1) for m in _HTML_LINK.finditer(prose)]
