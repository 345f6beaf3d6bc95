"""The light core install: numpy and torch alone are enough for ``steplr.StepLR`` and ``steplr explain``, and a
command that needs an extra names it (``steplr._extras``) in one line.

The integration test builds a fresh venv (no system site-packages) with pip, from the same numpy and torch the
test's own environment runs (``constraints.txt`` pins torch's CPU build, which pip takes from its local wheels or
cache, so no large download happens), installs the wheel tests/test_wheel.py builds with ``--no-deps`` (the wheel,
not the checkout: what users get) and runs it there.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import steplr
from steplr._extras import _COVERS, EXTRA_OF_MODULE, MissingExtraError, missing_extra
from steplr.cli.main import main
from steplr.errors import SteplrError
from test_wheel import built_wheel

ROOT = Path(__file__).resolve().parents[1]
EXPLAIN = ["explain", "--lr", "0.1", "--step-size", "10", "--gamma", "0.5", "--epochs", "40"]
# The distribution that brings each optional module.
DISTRIBUTION = {
    "matplotlib": "matplotlib",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "tqdm": "tqdm",
    "optuna": "optuna",
    "psycopg": "psycopg",
    "tensorboard": "tensorboard",
    "keras": "keras",
    "jax": "jax",
    "optax": "optax",
}
# Extras left out of `all` on purpose: large frameworks only their adapters need.
NOT_IN_ALL = {"keras", "jax"}


def _extras_declared() -> dict[str, set[str]]:
    """Each extra of pyproject.toml -> the distributions it installs, its references to other extras followed."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def expand(extra: str) -> set[str]:
        found: set[str] = set()
        for requirement in declared[extra]:
            name, _, inner = re.match(r"([A-Za-z0-9_.-]+)(\[([^\]]*)\])?", requirement).groups()
            if name == "steplr":
                for other in inner.split(","):
                    found |= expand(other.strip())
            else:
                found.add(name.lower())
        return found

    return {extra: expand(extra) for extra in declared}


def test_the_core_dependencies_are_numpy_and_torch():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(re.match(r"[a-z]+", d).group() for d in project["dependencies"]) == ["numpy", "torch"]


def test_every_optional_module_is_in_the_extra_it_names_and_in_all():
    extras = _extras_declared()
    for module, extra in EXTRA_OF_MODULE.items():
        assert DISTRIBUTION[module] in extras[extra], (module, extra)
        assert (DISTRIBUTION[module] in extras["all"]) == (extra not in NOT_IN_ALL), module
    assert set(_COVERS) == set(extras) - {"all", "test"}  # every extra users install is mapped
    for extra, covered in _COVERS.items():  # which extra installs everything another one does
        assert covered == {other for other in _COVERS if extras[other] <= extras[extra]}, extra


@pytest.mark.parametrize(
    ("module", "command", "extra"),
    [
        ("matplotlib", "plot", "plot"),
        ("matplotlib", None, "plot"),
        ("matplotlib", "compare", "experiments"),  # the command's extra, so one install is enough
        ("sklearn.model_selection", "train", "experiments"),
        ("sklearn", "plot", "experiments"),  # plot's extra does not bring scikit-learn
        ("tqdm", "sweep", "experiments"),
        ("optuna", "sweep", "tune"),  # a grid sweep needs experiments, an Optuna one tune
        ("psycopg", None, "tune"),
        ("tensorboard", "train", "tensorboard"),  # not the command's extra: experiments does not bring it
        ("tensorboard", "sweep", "tensorboard"),
        ("keras", None, "keras"),
        ("jax.numpy", None, "jax"),
        ("optax", None, "jax"),
    ],
)
def test_a_missing_optional_module_names_its_extra_in_one_line(module, command, extra):
    error = missing_extra(ModuleNotFoundError(f"No module named {module!r}", name=module), command)
    assert isinstance(error, MissingExtraError) and isinstance(error, SteplrError) and isinstance(error, ImportError)
    message = str(error)
    assert "\n" not in message and message.endswith(f"pip install 'steplr[{extra}]'")
    shown = "scikit-learn" if module.startswith("sklearn") else module.partition(".")[0]
    assert f" {shown}," in message or message.startswith(f"{shown} ")
    assert error.extra == extra
    assert (f"steplr {command} needs" in message) == (command is not None)


@pytest.mark.parametrize("module", ["steplr.nowhere", "numpy", "torch", "kiwisolver", ""])
def test_a_missing_module_of_no_extra_is_left_to_raise(module):
    assert missing_extra(ModuleNotFoundError("missing", name=module or None), "plot") is None


def test_every_test_named_for_the_integration_marker_exists():
    """conftest.py marks some tests by name: a renamed or moved test must not silently join ``make test-fast``."""
    from conftest import _INTEGRATION_MODULES, _INTEGRATION_TESTS

    tests = ROOT / "tests"
    for module, names in _INTEGRATION_TESTS.items():
        [path] = tests.rglob(module)
        source = path.read_text()
        for name in names:
            assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{module}::{name}"
    for module in _INTEGRATION_MODULES:
        assert len(list(tests.rglob(module))) == 1, module


# ------------------------------------------------------------------------------------------ a core-only venv


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding steplr's wheel (``--no-deps``), numpy and torch (with torch's own dependencies), nothing
    else."""
    where = tmp_path_factory.mktemp("core")
    venv = where / "venv"
    done = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], where)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    # This environment's pip installs into the new venv (--python), which then needs no pip of its own.
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "-c",
        str(ROOT / "constraints.txt"),
    ]
    same = [
        f"numpy=={importlib.metadata.version('numpy')}",
        f"torch=={importlib.metadata.version('torch').partition('+')[0]}",
    ]
    for arguments in (same, ["--no-deps", str(built_wheel(tmp_path_factory))]):
        done = _run([*pip, *arguments], where, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    return venv


def _core_python(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    return _run([str(venv / "bin" / "python"), "-c", textwrap.dedent(code)], venv.parent)


@pytest.mark.integration
def test_the_core_venv_has_no_extra(core_venv):
    done = _core_python(
        core_venv,
        """
        import importlib.util
        for name in ("matplotlib", "sklearn", "scipy", "tqdm", "optuna", "psycopg", "lightning", "tensorboard",
                     "keras", "jax", "optax"):
            assert importlib.util.find_spec(name) is None, name
        import steplr
        print(steplr.__file__)
    """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(core_venv)), done.stdout


@pytest.mark.integration
def test_core_steplr_StepLR_drives_a_real_optimizer_as_torch_does(core_venv):
    done = _core_python(
        core_venv,
        """
        import torch
        import steplr

        ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
        torch_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
        ours = steplr.StepLR(ours_opt, step_size=3, gamma=0.5)
        reference = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=3, gamma=0.5)
        for _ in range(10):
            ours_opt.step(); torch_opt.step(); ours.step(); reference.step()
            assert ours.get_last_lr() == reference.get_last_lr(), (ours.get_last_lr(), reference.get_last_lr())
        assert ours_opt.param_groups[0]["lr"] == 0.1 * 0.5 ** 3
        print("ok")
    """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


@pytest.mark.integration
def test_the_core_layers_import_without_any_extra(core_venv):
    """Every module of schedules, lr_scheduler, training and the CLI's entry loads on the core alone, and none
    pulls in an optional module (the layer contract says so; this checks it where they are really missing)."""
    done = _core_python(
        core_venv,
        """
        import importlib, pkgutil, sys
        import steplr.schedules, steplr.training
        names = ["steplr", "steplr.lr_scheduler", "steplr.errors", "steplr._files", "steplr._extras", "steplr.cli.main"]
        for package in (steplr.schedules, steplr.training):
            names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
        for name in names:
            importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in
                        ("matplotlib", "sklearn", "scipy", "tqdm", "optuna", "psycopg", "tensorboard",
                         "keras", "jax", "optax"))
        assert not loaded, loaded
        print(len(names))
    """,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 10


@pytest.mark.integration
def test_the_wheel_s_steplr_command_prints_the_version(core_venv):
    done = _run([str(core_venv / "bin" / "steplr"), "--version"], core_venv.parent)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"steplr {steplr.__version__}\n", "")
    shown = _core_python(core_venv, "import importlib.metadata; print(importlib.metadata.version('steplr'))")
    assert shown.stdout == f"{steplr.__version__}\n"
    # Installed from the wheel, not linked to the checkout: the package's files are in the venv, py.typed too.
    typed = _core_python(
        core_venv, "import pathlib, steplr; print(pathlib.Path(steplr.__file__).with_name('py.typed'))"
    )
    assert typed.stdout.startswith(str(core_venv)) and Path(typed.stdout.strip()).is_file()


@pytest.mark.integration
def test_explain_runs_on_the_core_and_prints_what_the_full_install_prints(core_venv, capsys):
    done = _run([str(core_venv / "bin" / "steplr"), *EXPLAIN], core_venv.parent)
    assert (done.returncode, done.stderr) == (0, "")
    assert main(EXPLAIN) == 0
    assert done.stdout == capsys.readouterr().out
    assert "final lr 0.0125" in done.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["plot", "--lr", "0.1", "--step-size", "10", "--gamma", "0.5", "--epochs", "40", "-o", "x.png"], "plot"),
        (["compare", "qwerty", "--seeds", "2", "--out", "runs"], "experiments"),
    ],
)
def test_a_command_needing_a_missing_extra_names_it_in_one_line(core_venv, tmp_path, argv, extra):
    done = _run([str(core_venv / "bin" / "steplr"), *argv], tmp_path)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.rstrip().endswith(f"pip install 'steplr[{extra}]'")
    assert list(tmp_path.iterdir()) == []  # nothing written
