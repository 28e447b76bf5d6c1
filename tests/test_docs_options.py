"""The option tables of README.md and docs/operations.md against the parser:
every option ``blindai-server --help`` lists has a row with its default."""

from __future__ import annotations

import re

import pytest
from support import REPO

from blindai.server.config import build_parser

OPTIONS = sorted(
    option
    for action in build_parser()._actions
    for option in action.option_strings
    if option.startswith("--") and option != "--help"
)


def _table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `--") and len(cells) == 3:
            for option in re.findall(r"`(--[a-z-]+)`", cells[0]):
                rows[option] = cells
    return rows


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_every_server_option_is_in_the_table(doc):
    rows = _table_rows((REPO / doc).read_text())
    assert [o for o in OPTIONS if o not in rows] == []
    assert [o for o in rows if o not in OPTIONS] == []


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_every_option_with_a_value_has_its_default(doc):
    rows = _table_rows((REPO / doc).read_text())
    no_default = [o for o, cells in rows.items() if not cells[1] and o != "--version"]
    assert no_default == []
