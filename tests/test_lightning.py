"""Lightning accepts steplr's schedulers in configure_optimizers and LearningRateMonitor logs their values."""

from __future__ import annotations

import csv
import logging

import pytest
import torch

import steplr

lightning = pytest.importorskip("lightning.pytorch")

BATCHES = 4

# Lightning 2.6 uses a torch pytree class that torch 2.13 deprecates; that is between those two projects.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


class Tiny(lightning.LightningModule):
    def __init__(self, interval: str, step_size: int, gamma: float) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.interval, self.step_size, self.gamma = interval, step_size, gamma

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(BATCHES * 2, 3, generator=generator)
        data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
        return torch.utils.data.DataLoader(data, batch_size=2)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        scheduler = steplr.StepLR(optimizer, step_size=self.step_size, gamma=self.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.interval}}


def logged_lrs(tmp_path, interval, step_size, gamma, epochs):
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logger = lightning.loggers.CSVLogger(tmp_path, name="run", version=0)
    trainer = lightning.Trainer(
        max_epochs=epochs,
        logger=logger,
        callbacks=[lightning.callbacks.LearningRateMonitor(logging_interval=interval)],
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(Tiny(interval, step_size, gamma))
    with open(tmp_path / "run" / "version_0" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [float(row["lr-SGD"]) for row in rows if row.get("lr-SGD")]


def test_interval_step(tmp_path):
    lrs = logged_lrs(tmp_path, "step", step_size=3, gamma=0.5, epochs=2)
    assert lrs == [0.1 * 0.5 ** (t // 3) for t in range(2 * BATCHES)]


def test_interval_epoch(tmp_path):
    lrs = logged_lrs(tmp_path, "epoch", step_size=1, gamma=0.5, epochs=3)
    assert lrs == [0.1, 0.05, 0.025]
