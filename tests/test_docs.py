"""The examples in docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "steplr",
    "steplr.schedules.durations",
    "steplr.schedules._exact",
    "steplr.schedules.kinds",
    "steplr.schedules.cycles",
    "steplr.schedules.registry",
    "steplr.schedules.explain",
    "steplr.lr_scheduler",
    "steplr.experiments.user",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


PINNED = [
    *MODULES,
    "steplr.cli.main",
    "steplr.experiments.plots",
    "steplr.experiments.results",
    "steplr.experiments.report",
]


@pytest.mark.parametrize("name", PINNED)
def test_every_module_pins_its_public_names(name):
    module = importlib.import_module(name)
    assert module.__all__, name
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.{public}"
