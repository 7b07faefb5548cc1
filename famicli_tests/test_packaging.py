"""What ``pip install .`` ships (pyproject.toml): every famicli package, the demo assets, no tests."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from famicli.data.synthtrack import demo

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
pytestmark = pytest.mark.skipif(not PYPROJECT.is_file(), reason="no pyproject.toml: not a source checkout")


def setuptools_table() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]


def test_packaged_list_is_what_is_on_disk():
    on_disk = {
        ".".join(folder.relative_to(REPO).parts)
        for folder in (REPO / "famicli").rglob("*")
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py"))
    }
    on_disk |= {"famicli"}
    listed = set(setuptools_table()["packages"])
    assert listed == on_disk | {"famicli.assets"}  # a new subpackage must be listed in pyproject.toml
    assert not any(name.startswith("famicli_tests") for name in listed)


def test_the_demo_assets_are_package_data():
    table = setuptools_table()
    assert table["package-dir"] == {"famicli.assets": "assets"}
    patterns = table["package-data"]["famicli.assets"]
    for name in (demo.WEIGHTS_NAME, demo.VIDEO_NAME, demo.BOXES_NAME, "README.md"):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert (REPO / "assets" / "__init__.py").is_file()  # famicli.assets is a regular package


def test_the_demo_finds_its_assets_through_the_package():
    import importlib.resources

    package = Path(importlib.resources.files("famicli.assets")).resolve()  # editable: this checkout's assets/
    assert demo.ASSET_DIRS[0] == package
    if (package / demo.WEIGHTS_NAME).is_file():
        assert demo.default_weights() == package / demo.WEIGHTS_NAME
