"""steplr as a package: one version everywhere, and an sdist and a wheel that ``python -m build`` makes from a clean
copy of the source, that ``twine check`` passes, and that hold the whole package and nothing else.

The wheel built here is also what tests/test_install.py installs into its fresh venv (:func:`built_wheel`), where
``steplr --version``, ``steplr explain`` and ``steplr.StepLR`` run from it: a file missing from the wheel (``py.typed``,
a module, package data) fails there rather than on a user's machine.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import steplr
from steplr.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
# What a copy of the checkout leaves out: tools' caches, virtual environments, earlier builds (a stale build/lib
# would put modules deleted since into the wheel), runs and downloaded data.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "runs",
    "data",
    "demo",
    "site",
)
_BUILT: dict[str, Path] = {}  # built once per test session, shared with tests/test_install.py


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def built_distributions(factory: pytest.TempPathFactory) -> Path:
    """A folder holding the sdist and the wheel of this checkout, built once per session by ``python -m build``
    (the sdist first, then the wheel from the sdist, as a release does) from a clean copy of the source, without
    build isolation: setuptools comes from this environment (the test extra), so no download is needed."""
    if "dist" not in _BUILT:
        pytest.importorskip("build")
        where = factory.mktemp("build")
        source = where / "source"
        shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
        done = _run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(where / "dist"), str(source)], where
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _BUILT["dist"] = where / "dist"
    return _BUILT["dist"]


def built_wheel(factory: pytest.TempPathFactory) -> Path:
    [wheel] = built_distributions(factory).glob("steplr-*.whl")
    return wheel


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_distributions(tmp_path_factory)


# ----------------------------------------------------------------------------------------------- the version


def test_steplr_version_prints_the_installed_distribution_s_version():
    out = io.StringIO()
    assert main(["--version"], out=out) == 0
    assert out.getvalue() == f"steplr {importlib.metadata.version('steplr')}\n"
    assert importlib.metadata.version("steplr") == steplr.__version__


def test_the_version_is_written_once():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "steplr.__version__"}
    init = (ROOT / "src" / "steplr" / "__init__.py").read_text()
    # A plain literal, so setuptools reads it from the file without importing steplr (and torch).
    assert re.findall(r'^__version__ = "([^"]+)"$', init, re.MULTILINE) == [steplr.__version__]


# ------------------------------------------------------------------------------------------ the built files


@pytest.mark.integration  # builds in a subprocess (about 5 s)
def test_build_makes_an_sdist_and_a_wheel_that_twine_passes(dist):
    names = sorted(p.name for p in dist.iterdir())
    assert names == [f"steplr-{steplr.__version__}-py3-none-any.whl", f"steplr-{steplr.__version__}.tar.gz"]
    pytest.importorskip("twine")
    done = _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))], dist)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


@pytest.mark.integration  # builds in a subprocess (about 5 s)
def test_the_wheel_holds_every_module_py_typed_and_the_entry_point_and_nothing_else(dist):
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"steplr-{steplr.__version__}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    package = ROOT / "src" / "steplr"
    modules = {f"steplr/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == modules
    assert {n for n in names if not n.endswith(".py") and not n.startswith(f"{info}/")} == {"steplr/py.typed"}
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)
    assert f"{info}/licenses/LICENSE" in names
    assert re.search(r"^\[console_scripts\]\nsteplr = steplr\.cli:entrypoint$", entry_points, re.MULTILINE)
    assert f"\nVersion: {steplr.__version__}\n" in metadata
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.MULTILINE))
    assert {"plot", "experiments", "tune", "tensorboard", "keras", "jax", "all"} <= extras
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE)
    assert sorted(r.split(">")[0] for r in requires if "extra ==" not in r) == ["numpy", "torch"]


@pytest.mark.integration  # builds in a subprocess (about 5 s)
def test_the_sdist_holds_the_source_and_the_wheel_s_inputs(dist):
    [sdist] = dist.glob("*.tar.gz")
    top = f"steplr-{steplr.__version__}"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    assert {"pyproject.toml", "README.md", "PKG-INFO", "src/steplr/py.typed", "src/steplr/cli/main.py"} <= names
    package = ROOT / "src" / "steplr"
    assert {f"src/steplr/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")} <= names
