"""The models of the reference notes."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["QwertyNet", "SimpleNet", "build_model", "MODELS"]


class QwertyNet(nn.Module):
    """2 -> 8 (ReLU) -> 3 logits: the notes' Qwerty classifier."""

    def __init__(self, in_features: int = 2, hidden: int = 8, num_classes: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc2(torch.relu(self.fc1(x)))
        return logits


class SimpleNet(nn.Module):
    """One linear layer from flattened pixels to class logits: the notes' MNIST model (784 -> 10)."""

    def __init__(self, in_features: int = 28 * 28, num_classes: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(x.reshape(x.shape[0], -1))
        return logits


MODELS = ("qwerty", "linear")


def build_model(name: str, in_features: int, num_classes: int) -> nn.Module:
    """A fresh model by name; weights come from torch's global RNG (the caller seeds it)."""
    if name == "qwerty":
        return QwertyNet(in_features, 8, num_classes)
    if name == "linear":
        return SimpleNet(in_features, num_classes)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
