"""How much work a command asks for, checked before anything is allocated (no torch, no NumPy).

A run's size is bounded three ways: scheduler steps and iterations per run (the cap ``explain`` has), the number of
models trained (seeds x configs), and an estimate of peak memory against a budget (``--max-memory``, by default
half of the memory the system reports available). Each refusal is one line naming the flag to change.

The estimate counts what grows with the request, per model: the per-iteration LR history (Python floats kept for
every model until the command ends, with the table and arrays built around them: measured at ~84 bytes a
model-iteration), the LR table of the models trained together, the stacked weights with their gradients and
optimizer state, and the shuffled copy of the training set each model of a batch gets per epoch. It is meant to
be pessimistic.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from steplr.errors import SteplrValueError

__all__ = [
    "BudgetError",
    "Work",
    "MAX_RUN_STEPS",
    "MAX_MODELS",
    "parse_size",
    "available_memory",
    "default_budget",
    "estimate",
    "check",
    "format_size",
    "SMALL_DATA_BYTES",
    "models_per_chunk",
]

MAX_RUN_STEPS = 20_000_000  # iterations of one run (explain tabulates plans up to this many steps)
MAX_MODELS = 200_000  # models in one command (seeds x configs); what fits in memory: benchmarks/RESULTS.md, "sweep"
BUDGET_SHARE = 0.5  # of the available memory, by default
# Bytes per (model, iteration): the recorded LR (an 8-byte list slot and a 24-byte float), the LR table it comes
# from, and the arrays the figures and summaries build from it. Set a little above what `compare qwerty --seeds 50`
# was measured to add to its peak memory per model-iteration at 2,000 and 20,000 epochs (issue 9's note).
_HISTORY_ENTRY = 96
_TABLE_ENTRY = 12  # bytes per (model, step) of an LR table: float64 and its float32 copy
_STATE_COPIES = 4  # weights, gradients and two optimizer moments (Adam; SGD keeps fewer)
# Both engines shuffle the training set with one gather per epoch (a copy per model) while all the copies together
# take at most this many bytes, else they gather every batch on its own (steplr.training.plan.RunPlan).
SMALL_DATA_BYTES = 64 * 2**20
_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 2**10,
    "m": 2**20,
    "mb": 2**20,
    "g": 2**30,
    "gb": 2**30,
    "t": 2**40,
    "tb": 2**40,
}


class BudgetError(SteplrValueError):
    """The work asked for is larger than steplr allows or than the memory budget: one line naming the flag."""


@dataclass(frozen=True)
class Work:
    """What a command will train: ``models`` runs of ``iterations`` batches and ``steps`` scheduler steps each,
    ``together`` of them at a time, each with ``parameters`` weights and a ``data_bytes`` copy of the training set
    per epoch when trained in a batch."""

    models: int
    iterations: int
    steps: int
    together: int
    parameters: int
    data_bytes: int


def parse_size(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GB"``, ``"800000000"`` (bytes) -> bytes.

    Raises:
        ValueError: for anything else, naming the text.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise SteplrValueError(f"expected a size such as 4G, 512M or a number of bytes, got {text!r}")
    size = float(match.group(1)) * _UNITS[unit]
    if not size > 0 or not math.isfinite(size):
        raise SteplrValueError(f"expected a size above 0, got {text!r}")
    return int(size)


def available_memory() -> int | None:
    """Bytes the system can give without swapping (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def default_budget() -> int | None:
    """Half the available memory (None where the system does not say)."""
    available = available_memory()
    return None if available is None else int(available * BUDGET_SHARE)


def estimate(work: Work) -> int:
    """Peak bytes the work needs beyond the interpreter, torch and the data set themselves (a pessimistic sum)."""
    histories = work.models * work.iterations * _HISTORY_ENTRY
    tables = work.together * work.steps * _TABLE_ENTRY  # per-epoch stepping: fewer steps than iterations
    state = work.together * work.parameters * 4 * _STATE_COPIES
    copies = min(work.together * work.data_bytes, SMALL_DATA_BYTES)
    return histories + tables + state + copies


def format_size(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check(work: Work, budget: int | None, what: str) -> None:
    """Refuse ``work`` (of a command described as ``what``) when it is past a cap or the memory budget.

    Raises:
        BudgetError: naming the flags that shrink the work, and ``--max-memory``.
    """
    if work.iterations > MAX_RUN_STEPS:
        raise BudgetError(
            f"{what} asks for {work.iterations:,} iterations per run, more than steplr runs ({MAX_RUN_STEPS:,}): "
            "lower --epochs (or raise --batch-size)"
        )
    if work.models > MAX_MODELS:
        raise BudgetError(
            f"{what} asks for {work.models:,} models, more than steplr trains in one command ({MAX_MODELS:,}): "
            "lower --seeds (or the number of configs)"
        )
    if budget is None:
        return
    need = estimate(work)
    if need > budget:
        raise BudgetError(
            f"{what} needs about {format_size(need)} ({work.models:,} models x {work.iterations:,} iterations), more "
            f"than --max-memory {format_size(budget)}: lower --epochs or --seeds, or raise --max-memory"
        )


def models_per_chunk(per_model: int, models: int, budget: int | None, fixed: int = 0) -> int:
    """How many of ``models`` train together when each needs ``per_model`` bytes, all of them together need
    ``fixed`` bytes more, and the whole may take ``budget`` bytes (None: no budget, all of them); at least 1.

    Raises:
        BudgetError: when one model alone does not fit the budget, naming ``--max-memory``.
    """
    if budget is None or per_model <= 0:
        return models
    if per_model + fixed > budget:
        raise BudgetError(
            f"one model needs about {format_size(per_model + fixed)} to train, more than --max-memory "
            f"{format_size(budget)}: raise --max-memory (or lower --batch-size)"
        )
    return max(1, min(models, (budget - fixed) // per_model))
