"""The models of the reference notes, and the shape each declares for the batched engine."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from steplr.errors import SteplrValueError

__all__ = ["StackSpec", "QwertyNet", "SimpleNet", "SmallCNN", "build_model", "stack_spec", "MODELS"]


@dataclass(frozen=True)
class StackSpec:
    """What the batched engine can run: ``Linear`` layers applied in turn to the flattened input, with ReLU
    between consecutive layers (none after the last: its outputs are the logits).

    ``layers`` names the model's ``nn.Linear`` attributes in the order they are applied; the batched engine reads
    the initial weights from them and writes a model's trained weights back under the same names.
    """

    layers: tuple[str, ...]
    activation: str = "relu"

    def __post_init__(self) -> None:
        if not self.layers:
            raise SteplrValueError("a stack needs at least one layer, got none")
        if self.activation != "relu":
            raise SteplrValueError(f"the batched engine runs ReLU stacks only, got activation {self.activation!r}")


class QwertyNet(nn.Module):
    """2 -> 8 (ReLU) -> 3 logits: the notes' Qwerty classifier."""

    stack: ClassVar[StackSpec] = StackSpec(("fc1", "fc2"))

    def __init__(self, in_features: int = 2, hidden: int = 8, num_classes: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc2(torch.relu(self.fc1(x)))
        return logits


class SimpleNet(nn.Module):
    """One linear layer from flattened pixels to class logits: the notes' MNIST model (784 -> 10)."""

    stack: ClassVar[StackSpec] = StackSpec(("fc",))

    def __init__(self, in_features: int = 28 * 28, num_classes: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(x.reshape(x.shape[0], -1))
        return logits


class SmallCNN(nn.Module):
    """Two 3x3 convolutions (8 and 16 channels, each with BatchNorm, ReLU and 2x2 max-pooling) and a linear layer
    to the class logits: a small network for square one-channel images given flattened (``fashion-cnn``)."""

    def __init__(self, side: int = 28, num_classes: int = 10, channels: tuple[int, int] = (8, 16)) -> None:
        super().__init__()
        c1, c2 = channels
        self.side = side
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(c2 * (side // 4) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.reshape(x.shape[0], 1, self.side, self.side)
        logits: torch.Tensor = self.fc(self.features(images).flatten(1))
        return logits


MODELS = ("qwerty", "linear", "cnn")


def build_model(name: str, in_features: int, num_classes: int) -> nn.Module:
    """A fresh model by name; weights come from torch's global RNG (the caller seeds it).

    Raises:
        SteplrValueError: for a name not in :data:`MODELS`.
    """
    if name == "qwerty":
        return QwertyNet(in_features, 8, num_classes)
    if name == "linear":
        return SimpleNet(in_features, num_classes)
    if name == "cnn":
        side = math.isqrt(in_features)
        if side * side != in_features or side < 4:
            raise SteplrValueError(f"model cnn takes square images of 4x4 pixels or more, got {in_features} features")
        return SmallCNN(side, num_classes)
    raise SteplrValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def stack_spec(model: nn.Module) -> StackSpec | None:
    """The :class:`StackSpec` the model's class declares (attribute ``stack``), or None: no batched fast path."""
    spec = getattr(type(model), "stack", None)
    return spec if isinstance(spec, StackSpec) else None
