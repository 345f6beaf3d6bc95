"""steplr's StepLR in a Lightning module, its rates logged by Lightning's LearningRateMonitor.

Run it with ``python docs/examples/lightning_lr_monitor.py``: it trains a small regression for 6 epochs on CPU,
logs the learning rate once an epoch to a CSV file in a temporary folder, and prints the logged rates beside
``StepDecay``'s closed form. Needs ``lightning`` (``pip install lightning``).
"""

from __future__ import annotations

import csv
import logging
import tempfile
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

import steplr

EPOCHS = 6
BASE_LR = 0.1


class Regression(pl.LightningModule):
    """A linear model on synthetic data, its SGD learning rate halved every 2 epochs by steplr."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def train_dataloader(self) -> torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=generator)
        y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)

    def configure_optimizers(self) -> dict[str, object]:
        optimizer = torch.optim.SGD(self.parameters(), lr=BASE_LR)
        # The same call as torch.optim.lr_scheduler.StepLR: stepped by Lightning once an epoch.
        scheduler = steplr.StepLR(optimizer, step_size=2, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def main() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # keep the output to the table below
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as folder:
        trainer = pl.Trainer(
            max_epochs=EPOCHS,
            logger=pl.loggers.CSVLogger(folder, name="run", version=0),
            callbacks=[pl.callbacks.LearningRateMonitor(logging_interval="epoch")],
            log_every_n_steps=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
        )
        torch.manual_seed(0)
        trainer.fit(Regression())
        with open(Path(folder) / "run" / "version_0" / "metrics.csv", newline="") as handle:
            logged = [float(row["lr-SGD"]) for row in csv.DictReader(handle) if row.get("lr-SGD")]
    closed_form = steplr.StepDecay(step_size=2, gamma=0.5)
    print("epoch  lr-SGD (LearningRateMonitor)  StepDecay(2, 0.5).lr(0.1, epoch)")
    for epoch, lr in enumerate(logged):
        print(f"{epoch:5d}  {lr:<28g}  {closed_form.lr(BASE_LR, epoch):g}")
    if logged != [closed_form.lr(BASE_LR, epoch) for epoch in range(EPOCHS)]:
        raise SystemExit("the logged rates differ from the closed form")


if __name__ == "__main__":
    main()
