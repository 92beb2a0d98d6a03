"""The project carries its own rules and contract: every relative link of the README and
of docs/ names a file of this repository, and nothing points outside it (a user who
clones the project has no ../shared)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_stay_inside_the_project_and_name_files_that_exist(page: Path) -> None:
    text = page.read_text()
    assert "../shared" not in text and "shared/design" not in text
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue
        path = (page.parent / target).resolve()
        assert path.is_relative_to(ROOT), f"{page.name}: {target} points outside the project"
        assert path.exists(), f"{page.name}: {target} does not exist"


def test_the_rules_and_the_contract_are_part_of_the_project() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/RULES.md" in readme and "docs/CONTRACT.md" in readme
    contract = (ROOT / "docs" / "CONTRACT.md").read_text()
    for name in ("ProposalNotExecuted", "not_executed", "NoticeReversalRefused",
                 "RunDecisionRefused", "groups_pending_proposal", "accounts_failed",
                 "RunScheduleSet", "scheduled_at", "ScheduledStartMissed", "invalid_schedule"):
        assert name in contract


def test_no_file_of_the_project_holds_a_merge_conflict() -> None:
    """A conflict resolved by committing its markers is found here, not by a reader."""
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    marker = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".md", ".py", ".toml", ".yaml", ".yml", ".avsc", ".html",
                               ".txt", ".cfg", ".json", ".css", ".js"} or not path.exists():
            continue
        if marker.search(path.read_text("utf-8", errors="replace")):
            found.append(name)
    assert not found, f"merge conflict markers in {found}"
