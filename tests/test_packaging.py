"""pyproject.toml: metadata that installs without warnings, commands declared."""

from __future__ import annotations

import re
import tomllib

from support import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression():
    # The table form ({ text = ... }) makes setuptools 77+ print a deprecation
    # block at every install; the string form needs setuptools 77 to build.
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    (setuptools,) = [
        r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")
    ]
    minimum = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert minimum is not None and int(minimum.group(1)) >= 77


def test_both_commands_are_declared():
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["blindai-server"] == "blindai.server.__main__:main"
    assert scripts["blindai"] == "blindai.cli:main"
