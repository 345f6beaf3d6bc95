"""Which optional dependency comes with which extra, and the one-line error that names the extra to install.

The core install is numpy and torch: the schedules, the torch drop-ins and ``steplr explain``. Everything else is
an extra (``pyproject.toml``): ``plot`` draws figures, ``experiments`` trains, compares and sweeps, ``tune`` adds the
Optuna search, ``tensorboard`` writes TensorBoard event files (``--tensorboard DIR``), ``all`` is those four;
``keras`` and ``jax`` (jax and optax) bring what the adapters :mod:`steplr.keras` and :mod:`steplr.optax` wrap, and
are left out of ``all``. This module imports only :mod:`steplr.errors` and the standard library, so it works when
an import has just failed.

>>> error = ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
>>> print(missing_extra(error, "plot"))
steplr plot needs matplotlib, which is not installed: pip install 'steplr[plot]'
>>> print(missing_extra(error, "compare"))
steplr compare needs matplotlib, which is not installed: pip install 'steplr[experiments]'
>>> print(missing_extra(ModuleNotFoundError("No module named 'optuna'", name="optuna")))
optuna is not installed: pip install 'steplr[tune]'
>>> missing_extra(ModuleNotFoundError("No module named 'steplr.nowhere'", name="steplr.nowhere")) is None
True
>>> print(missing_extra(ModuleNotFoundError("No module named 'tensorboard'", name="tensorboard"), "train"))
steplr train needs tensorboard, which is not installed: pip install 'steplr[tensorboard]'
>>> print(missing_extra(ModuleNotFoundError("No module named 'optax'", name="optax")))
optax is not installed: pip install 'steplr[jax]'
"""

from __future__ import annotations

from steplr.errors import SteplrError

__all__ = ["DISTRIBUTION_OF_MODULE", "EXTRA_OF_MODULE", "MissingExtraError", "missing_extra"]

# Top-level module -> the smallest extra that installs it (tests/test_install.py checks it against pyproject.toml).
EXTRA_OF_MODULE = {
    "matplotlib": "plot",
    "sklearn": "experiments",
    "scipy": "experiments",
    "tqdm": "experiments",
    "optuna": "tune",
    "psycopg": "tune",
    "tensorboard": "tensorboard",
    "keras": "keras",
    "jax": "jax",
    "optax": "jax",
}

# Top-level module -> the distribution to name to users (pip's name for it).
DISTRIBUTION_OF_MODULE = {"sklearn": "scikit-learn"}

# What each extra installs, itself included: naming a larger extra is right when it covers the missing module.
_COVERS = {
    "plot": {"plot"},
    "experiments": {"plot", "experiments"},
    "tune": {"plot", "experiments", "tune"},
    "tensorboard": {"tensorboard"},
    "keras": {"keras"},
    "jax": {"jax"},
}

# The extra a command needs as a whole, so that one install is enough (an Optuna sweep may still ask for tune).
_EXTRA_OF_COMMAND = {"plot": "plot", "train": "experiments", "compare": "experiments", "sweep": "experiments"}


class MissingExtraError(SteplrError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, extra: str, command: str | None = None) -> None:
        missing = (
            f"steplr {command} needs {module}, which is not installed" if command else f"{module} is not installed"
        )
        super().__init__(f"{missing}: pip install 'steplr[{extra}]'", name=module)
        self.module, self.extra = module, extra  # module: as pip names it (scikit-learn, not sklearn)


def missing_extra(error: ModuleNotFoundError, command: str | None = None) -> MissingExtraError | None:
    """The :class:`MissingExtraError` for ``error`` when the missing module belongs to an extra, else None (a
    module of steplr's own or of the core missing is a bug or a broken install: let it raise as it is).

    Args:
        error: what a failed ``import`` raised.
        command: the ``steplr`` subcommand that was running, if any; when its extra covers the missing module,
            the message names that extra, which installs everything the command needs.
    """
    module = (error.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    wanted = _EXTRA_OF_COMMAND.get(command or "")
    if wanted is not None and extra in _COVERS[wanted]:
        extra = wanted
    return MissingExtraError(DISTRIBUTION_OF_MODULE.get(module, module), extra, command)
