"""The Hugging Face Trainer accepts steplr's schedulers through ``optimizers=(optimizer, scheduler)``: it logs the
rates torch's scheduler gives, and a run resumed from a mid-run checkpoint logs the same rates as one that ran
through. The model is a tiny Llama built from a config (random weights, no download)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

import steplr

# Nothing here may reach the network; the hub client reads these when it is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

STEPS = 24
SAVE_AT = 10  # mid-run and mid-block: StepLR below decays at steps 4, 8, 12, ...
BATCH = 2


def tiny_model() -> torch.nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=16,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


class Tokens(torch.utils.data.Dataset):
    """Fixed random token sequences, each its own labels (causal language modelling)."""

    def __init__(self, rows: int = STEPS * BATCH, length: int = 8) -> None:
        self.ids = torch.randint(0, 32, (rows, length), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


class StepsRun(transformers.TrainerCallback):
    """Records the global step after each optimizer step this trainer takes itself (not those it resumed past)."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def train(
    out: os.PathLike,
    build: Callable[[torch.optim.Optimizer], object],
    *,
    save_steps: int | None = None,
    resume_from: os.PathLike | None = None,
) -> tuple[list[float], list[int]]:
    """Train to step STEPS with the scheduler ``build`` makes. Returns the learning rate logged at each step (a
    resumed run's history starts with its checkpoint's) and the steps this call took itself."""
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        logging_steps=1,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or STEPS,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    steps = StepsRun()
    trainer = transformers.Trainer(
        model, args, train_dataset=Tokens(), optimizers=(optimizer, build(optimizer)), callbacks=[steps]
    )
    trainer.train(resume_from_checkpoint=None if resume_from is None else str(resume_from))
    return [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry], steps.steps


# steplr's scheduler and torch's with the same arguments; StepLR's blocks of 4 put a decay right after the
# checkpoint at SAVE_AT.
PAIRS: dict[str, tuple[Callable[..., object], Callable[..., object]]] = {
    "StepLR": (
        lambda opt: steplr.StepLR(opt, step_size=4, gamma=0.5),
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5),
    ),
    "MultiStepLR": (
        lambda opt: steplr.MultiStepLR(opt, milestones=[3, 11, 20], gamma=0.25),
        lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 11, 20], gamma=0.25),
    ),
    "ExponentialLR": (
        lambda opt: steplr.ExponentialLR(opt, gamma=0.5),
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5),
    ),
    "CosineAnnealingLR": (
        lambda opt: steplr.CosineAnnealingLR(opt, T_max=STEPS, eta_min=0.001),
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS, eta_min=0.001),
    ),
}


def same_rates(ours: list[float], theirs: list[float], name: str) -> bool:
    # Powers of two as gammas make torch's running products exact; its cosine recurrence rounds on its own.
    return ours == (theirs if name != "CosineAnnealingLR" else pytest.approx(theirs, rel=1e-12))


@pytest.mark.parametrize("name", PAIRS)
def test_the_trainer_logs_torchs_rates(tmp_path, name):
    ours, theirs = PAIRS[name]
    lrs, steps = train(tmp_path / "ours", ours)
    assert steps == list(range(1, STEPS + 1))
    torch_lrs, _ = train(tmp_path / "torch", theirs)
    assert same_rates(lrs, torch_lrs, name)
    if name == "StepLR":
        assert lrs == [0.1 * 0.5 ** (t // 4) for t in range(STEPS)]


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR"])
def test_a_run_resumed_mid_way_logs_the_uninterrupted_rates(tmp_path, name):
    ours, theirs = PAIRS[name]
    uninterrupted, _ = train(tmp_path / "through", ours)
    first, _ = train(tmp_path / "ours", ours, save_steps=SAVE_AT)
    checkpoint = tmp_path / "ours" / f"checkpoint-{SAVE_AT}"
    # The Trainer reads it back with weights_only=True too.
    assert torch.load(checkpoint / "scheduler.pt", weights_only=True)["last_epoch"] == SAVE_AT
    resumed, steps = train(tmp_path / "ours-resumed", ours, resume_from=checkpoint)
    assert steps == list(range(SAVE_AT + 1, STEPS + 1))
    assert first == resumed == uninterrupted

    train(tmp_path / "torch", theirs, save_steps=SAVE_AT)
    torch_resumed, _ = train(
        tmp_path / "torch-resumed", theirs, resume_from=tmp_path / "torch" / f"checkpoint-{SAVE_AT}"
    )
    assert same_rates(resumed, torch_resumed, name)
