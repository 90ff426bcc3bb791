"""The README is the learner's path (quick start, the three backends, the notebooks, where to go
next), the rest lives under docs/, and every link between them reaches a file and a heading
that exist."""

from __future__ import annotations

import re

from support import REPO

LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCS = ("instructors.md", "nim.md", "offline-server.md", "authoring.md", "scale-out.md")


def headings(path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_is_the_learners_path():
    sections = re.findall(r"^## (.+)$", (REPO / "README.md").read_text(), re.MULTILINE)
    assert sections == ["Quick start", "Three backends, one set of notebooks", "The notebooks",
                        "Where to go next"]


def test_readme_links_every_guide():
    readme = (REPO / "README.md").read_text()
    for name in DOCS:
        assert f"](docs/{name})" in readme, f"the README's 'Where to go next' lacks docs/{name}"


def test_every_local_link_reaches_a_file_and_heading():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.is_file():
                broken.append(f"{page.name}: {target} (no such file)")
            elif fragment and fragment not in {anchor(h) for h in headings(linked)}:
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []
