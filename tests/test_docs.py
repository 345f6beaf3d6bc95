"""The examples in docstrings run and print what they claim."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import re

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


# The API reference (docs/reference/api.md) renders these; their docstrings use the same Google-style sections.
DOCUMENTED = {
    "steplr.schedules.kinds": None,
    "steplr.schedules.cycles": None,
    "steplr.schedules.registry": ["RunShape", "Param", "Kind", "names", "compared", "lookup", "params_by_name"],
    "steplr.lr_scheduler": None,
    "steplr.experiments.user": ["compare", "sweep", "CompareResult", "SweepResult"],
}


def documented():
    for name, chosen in DOCUMENTED.items():
        module = importlib.import_module(name)
        for public in chosen or module.__all__:
            obj = getattr(module, public)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield pytest.param(obj, id=f"{name}.{public}")


@pytest.mark.parametrize("obj", list(documented()))
def test_the_public_api_has_uniform_docstring_sections(obj):
    doc = inspect.getdoc(obj) or ""
    takes = [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]
    if dataclasses.is_dataclass(obj):  # a record: its fields, examples where it is made
        assert "\nAttributes:\n" in doc
        return
    assert "\nExamples:\n" in doc
    if takes:
        assert "\nArgs:\n" in doc
        documented_args = re.findall(r"^    (\w+):", doc.split("\nArgs:\n", 1)[1].split("\n\n", 1)[0], re.MULTILINE)
        assert [p.name for p in takes if p.kind is not p.VAR_KEYWORD] == documented_args
    if inspect.isfunction(obj) and inspect.signature(obj).return_annotation not in ("None", None):
        assert "\nReturns:\n" in doc
    assert ":class:`" not in doc and ":func:`" not in doc and ".. math::" not in doc  # reST does not render
