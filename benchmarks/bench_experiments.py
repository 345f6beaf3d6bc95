"""Experiment benchmarks: steplr's trainer against the reference notes' own training pipelines.

What is measured, in one run, with ``torch.set_num_threads(1)`` on both sides:

1. Qwerty (2-8-3 MLP, SGD, 20 epochs, StepLR per iteration): wall time of a whole run, the notes' DataLoader loop
   against ``steplr.training.train.train``, in alternating pairs after a warm-up run of each; final test accuracy of
   both.
   Then a "same results" check: both loops started from the same initial weights and fed the same batch order,
   comparing per-epoch losses and accuracies and the final weights bit for bit.
2. Fashion-MNIST (linear 784->10, Adam, 5 epochs, StepLR per epoch): the notes' per-sample Dataset/DataLoader
   pipeline against ``train(recipe_config("fashion-mnist"), data)``, alternating; seconds per epoch and final test
   accuracy. Then a breakdown of one of our epochs (batch gathering, autograd forward+backward, Adam step,
   bookkeeping, evaluation) against a floor made of only the two matmuls of each batch.
3. ``steplr compare qwerty --seeds 10`` as a whole command (subprocess), next to ``python -c "import torch"``.
4. Peak memory (max RSS) of each measured program, each run alone in a child process: this script started with
   ``--only MODE``, under ``/usr/bin/time -v`` when it exists; the child also reports its own ``ru_maxrss``.

Results go to the ``experiments`` section of benchmarks/RESULTS.md (other sections are kept) and are printed.

Run: ``.venv/bin/python benchmarks/bench_experiments.py`` (about two to three minutes on a 2-core machine).
``--quick`` does fewer repetitions and writes nothing; ``--only MODE`` runs one program for the memory table.
The machine is assumed noisy: the two sides are measured in the same run, alternately (which one goes first
swaps from pair to pair), and medians of times and of per-pair ratios are reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _results import write_section  # benchmarks/ is sys.path[0] when run as a script
from PIL import Image
from torch import nn
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torch.utils.data import Dataset as TorchDataset

from steplr.experiments.compare import recipe_config
from steplr.training.config import History
from steplr.training.data import FASHION_MNIST_SYSTEM_DIR, Dataset, load_mnist, load_qwerty, read_idx
from steplr.training.models import build_model
from steplr.training.train import CHECKPOINT, load_checkpoint, train

QWERTY_PAIRS = 7
FASHION_PAIRS = 5  # a notes run takes seconds here, not minutes, so more than the planned 2 pairs fit
PROFILE_ROUNDS = 5
COMPARE_RUNS = 3
NOTES_EPOCH_LIMIT = 20.0  # seconds: above this, the notes' Fashion-MNIST pipeline is timed for 1 epoch only
SEED = 0
TIME_BIN = Path("/usr/bin/time")
MODES = ("idle", "qwerty-notes", "qwerty-ours", "fashion-notes", "fashion-ours")
FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def clock() -> float:
    return time.perf_counter()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------------------------------------------------
# The notes' Qwerty pipeline: TensorDataset + DataLoader, torch's StepLR stepped after every batch.


class NotesQwertyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        logits: torch.Tensor = self.fc2(x)
        return logits


class SeededOrder(Sampler[int]):
    """Yields, each epoch, ``torch.randperm(n)`` from one generator seeded once: the batch order steplr uses."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


@dataclass
class NotesRun:
    model: nn.Module
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)


def notes_qwerty(data: Dataset, seed: int, same_as_steplr: bool = False, epochs: int = 20) -> NotesRun:
    """The notes' Qwerty training. ``same_as_steplr`` only swaps where the randomness comes from: initial weights
    drawn like steplr draws them (seeded inside fork_rng) and batches in steplr's randperm order."""
    sampler: SeededOrder | None = None
    if same_as_steplr:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = NotesQwertyNet()
        sampler = SeededOrder(data.x_train.shape[0], seed)
    else:
        torch.manual_seed(seed)
        model = NotesQwertyNet()
    train_loader = DataLoader(
        TensorDataset(data.x_train, data.y_train), batch_size=32, shuffle=sampler is None, sampler=sampler
    )
    test_loader = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=32)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = StepLR(optimizer, step_size=len(train_loader) * 5, gamma=0.5)
    run = NotesRun(model)
    for _ in range(epochs):
        model.train()
        running_loss, correct, total = 0.0, 0, 0
        for inputs, labels in train_loader:
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            run.lrs.append(optimizer.param_groups[0]["lr"])
            running_loss += loss.item()
            correct += (outputs.argmax(dim=1) == labels).sum().item()
            total += labels.size(0)
        run.train_loss.append(running_loss / len(train_loader))
        run.train_acc.append(correct / total)
        model.eval()
        test_loss, correct, total = 0.0, 0, 0
        with torch.no_grad():
            for inputs, labels in test_loader:
                outputs = model(inputs)
                test_loss += criterion(outputs, labels).item()
                correct += (outputs.argmax(dim=1) == labels).sum().item()
                total += labels.size(0)
        run.test_loss.append(test_loss / len(test_loader))
        run.test_acc.append(correct / total)
    return run


def ours_qwerty(data: Dataset, seed: int, out_dir: Path | None = None) -> History:
    return train(recipe_config("qwerty", seed=seed), data, out_dir=out_dir)


# ---------------------------------------------------------------------------------------------------------------
# The notes' 28x28 protocol as torchvision runs it: datasets.MNIST keeps the images as one uint8 tensor and, per
# sample, wraps the 28x28 array in a PIL image, which transforms.ToTensor turns back into a float tensor (copy to a
# numpy array, view as HxWxC, permute to CxHxW, contiguous, to float, divide by 255). torchvision cannot be
# installed beside this torch build, so those steps are written out here with Pillow (matplotlib's dependency).
# DataLoader batch 64, SimpleNet, Adam 1e-3, StepLR(2, 0.1) stepped per epoch.


class NotesImages(TorchDataset[tuple[torch.Tensor, int]]):
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(images)
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        picture = Image.fromarray(self.images[index].numpy())  # a 2-D uint8 array is an "L" (grey) image
        array = np.array(picture, np.uint8, copy=True)
        image = torch.from_numpy(array).view(picture.size[1], picture.size[0], 1).permute((2, 0, 1)).contiguous()
        return image.to(dtype=torch.get_default_dtype()).div(255), int(self.labels[index])


class NotesSimpleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 28 * 28)
        logits: torch.Tensor = self.fc(x)
        return logits


def load_fashion_raw() -> tuple[NotesImages, NotesImages]:
    folder = Path(FASHION_MNIST_SYSTEM_DIR)
    arrays = [read_idx(folder / name) for name in FASHION_FILES]
    return NotesImages(arrays[0], arrays[1]), NotesImages(arrays[2], arrays[3])


def notes_fashion(train_set: NotesImages, test_set: NotesImages, seed: int, epochs: int = 5) -> NotesRun:
    torch.manual_seed(seed)
    model = NotesSimpleNet()
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=64)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = StepLR(optimizer, step_size=2, gamma=0.1)
    run = NotesRun(model)
    for _ in range(epochs):
        start = clock()
        model.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        correct, total = 0, 0
        with torch.no_grad():
            for images, labels in test_loader:
                outputs = model(images)
                correct += (outputs.argmax(dim=1) == labels).sum().item()
                total += labels.size(0)
        run.test_acc.append(correct / total)
        run.epoch_seconds.append(clock() - start)
    return run


def ours_fashion(data: Dataset, seed: int, epochs: int = 5) -> History:
    return train(recipe_config("fashion-mnist", seed=seed, epochs=epochs), data)


# ---------------------------------------------------------------------------------------------------------------
# 1. Qwerty


def bench_qwerty(pairs: int) -> dict[str, Any]:
    data = load_qwerty()
    notes_qwerty(data, SEED)  # warm-up: first calls of torch ops are much slower than later ones
    ours_qwerty(data, SEED)
    notes_s: list[float] = []
    ours_s: list[float] = []
    notes_acc: list[float] = []
    ours_acc: list[float] = []
    for pair in range(pairs):
        seed = pair  # both sides use the same seed in a pair; accuracies are averaged over the pairs' seeds
        for side in ("notes", "ours") if pair % 2 == 0 else ("ours", "notes"):
            start = clock()
            if side == "notes":
                acc = notes_qwerty(data, seed).test_acc[-1]
            else:
                acc = ours_qwerty(data, seed).epochs[-1].test_acc
            elapsed = clock() - start
            (notes_s if side == "notes" else ours_s).append(elapsed)
            (notes_acc if side == "notes" else ours_acc).append(acc)
    result: dict[str, Any] = {
        "pairs": pairs,
        "notes_s": median(notes_s),
        "ours_s": median(ours_s),
        "speedup": median([a / b for a, b in zip(notes_s, ours_s)]),
        "notes_acc": statistics.fmean(notes_acc),
        "ours_acc": statistics.fmean(ours_acc),
    }
    result.update(same_results(data, SEED))
    return result


def same_results(data: Dataset, seed: int) -> dict[str, Any]:
    """Both loops from the same initial weights and batch order: are the results bit-identical?"""
    notes = notes_qwerty(data, seed, same_as_steplr=True)
    with tempfile.TemporaryDirectory() as folder:
        ours = ours_qwerty(data, seed, out_dir=Path(folder))
        weights = load_checkpoint(Path(folder) / CHECKPOINT)["model"]
    theirs = notes.model.state_dict()
    identical = all(torch.equal(weights[k], theirs[k]) for k in theirs)
    max_diff = max(float((weights[k] - theirs[k]).abs().max()) for k in theirs)
    # The notes record the LR after scheduler.step() (the next iteration's); ours records the applied one.
    lrs_match = notes.lrs[:-1] == ours.iteration_lrs[1:]
    return {
        "same_test_acc": notes.test_acc == ours.column("test_acc"),
        "same_train_loss": notes.train_loss == ours.column("train_loss"),
        "same_train_acc": notes.train_acc == ours.column("train_acc"),
        "same_lrs": lrs_match,
        "same_weights": identical,
        "weights_max_diff": max_diff,
        "acc_max_diff": max(abs(a - b) for a, b in zip(notes.test_acc, ours.column("test_acc"))),
    }


# ---------------------------------------------------------------------------------------------------------------
# 2. Fashion-MNIST


def bench_fashion(pairs: int, profile_rounds: int) -> dict[str, Any]:
    data = load_mnist(kind="fashion-mnist")
    train_set, test_set = load_fashion_raw()
    ours_fashion(data, SEED, epochs=1)  # warm-up of each side
    start = clock()
    notes_fashion(train_set, test_set, SEED, epochs=1)
    warm_epoch = clock() - start
    notes_epochs = 5 if warm_epoch < NOTES_EPOCH_LIMIT else 1
    notes_s: list[float] = []
    ours_s: list[float] = []
    notes_acc: list[float] = []
    ours_acc: list[float] = []
    for pair in range(pairs):
        seed = pair
        for side in ("notes", "ours") if pair % 2 == 0 else ("ours", "notes"):
            start = clock()
            if side == "notes":
                acc = notes_fashion(train_set, test_set, seed, epochs=notes_epochs).test_acc[-1]
                notes_s.append((clock() - start) / notes_epochs)
                notes_acc.append(acc)
            else:
                acc = ours_fashion(data, seed).epochs[-1].test_acc
                ours_s.append((clock() - start) / 5)
                ours_acc.append(acc)
    result: dict[str, Any] = {
        "pairs": pairs,
        "notes_epochs": notes_epochs,
        "notes_epoch_s": median(notes_s),
        "ours_epoch_s": median(ours_s),
        "speedup": median([a / b for a, b in zip(notes_s, ours_s)]),
        "notes_acc": statistics.fmean(notes_acc),
        "ours_acc": statistics.fmean(ours_acc),
    }
    result["profile"] = profile_epoch(data, profile_rounds)
    return result


def profile_epoch(data: Dataset, rounds: int) -> dict[str, float]:
    """Seconds per epoch of the pieces of our Fashion-MNIST epoch, each timed alone (median over rounds, the
    pieces interleaved round by round), and the floor made of only the forward and weight-gradient matmuls."""
    x, y = data.x_train, data.y_train
    n, batch = x.shape[0], 64
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SEED))
    indices = [order[i : i + batch] for i in range(0, n, batch)]
    batches = [(x[i], y[i]) for i in indices]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = build_model("linear", x.shape[1], 10)
    weight = model.get_parameter("fc.weight").detach().clone()
    bias = model.get_parameter("fc.bias").detach().clone()
    grads_out = [torch.randn(xb.shape[0], 10) for xb, _ in batches]
    logits_fixed = [torch.randn(xb.shape[0], 10) for xb, _ in batches]

    def gather() -> None:
        for index in indices:
            torch.index_select(x, 0, index), torch.index_select(y, 0, index)

    def gather_once() -> None:  # one shuffled copy per epoch, then contiguous slices (views)
        shuffled_x, shuffled_y = torch.index_select(x, 0, order), torch.index_select(y, 0, order)
        for i in range(0, n, batch):
            shuffled_x[i : i + batch], shuffled_y[i : i + batch]

    def forward_backward() -> None:  # autograd, as in train(), without optimizer.step()
        for xb, yb in batches:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()  # type: ignore[no-untyped-call]

    def manual_forward_backward() -> None:  # the same gradients without autograd
        for xb, yb in batches:
            logits = torch.addmm(bias, xb, weight.t())
            g = torch.softmax(logits, dim=1)
            g[torch.arange(g.shape[0]), yb] -= 1.0
            g /= g.shape[0]
            torch.mm(g.t(), xb)
            g.sum(dim=0)

    def matmul_floor() -> None:  # forward x @ W.T and grad_W = g.T @ x per batch; nothing else
        wt = weight.t()
        for (xb, _), g in zip(batches, grads_out):
            torch.mm(xb, wt)
            torch.mm(g.t(), xb)

    def adam_steps(**options: Any) -> Callable[[], None]:
        net = build_model("linear", x.shape[1], 10)
        for p in net.parameters():
            p.grad = torch.randn_like(p) * 1e-3
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, **options)

        def run() -> None:
            for _ in indices:
                optimizer.step()

        return run

    loss_value = torch.tensor(0.5)
    lr_holder = torch.optim.Adam(model.parameters(), lr=1e-3)

    def bookkeeping() -> None:  # loss.item(), the accuracy count and the LR read of each batch in train()
        for logits, (_, yb) in zip(logits_fixed, batches):
            loss_value.item()
            int((logits.argmax(dim=1) == yb).sum())
            float(lr_holder.param_groups[0]["lr"])

    def evaluation() -> None:
        with torch.no_grad():
            logits = model(data.x_test)
            F.cross_entropy(logits, data.y_test).item()
            int((logits.argmax(dim=1) == data.y_test).sum())

    pieces: dict[str, Callable[[], None]] = {
        "gather": gather,
        "gather_once": gather_once,
        "forward_backward": forward_backward,
        "manual_forward_backward": manual_forward_backward,
        "matmul_floor": matmul_floor,
        "adam_step": adam_steps(),
        "adam_step_foreach": adam_steps(foreach=True),
        "adam_step_fused": adam_steps(fused=True),
        "bookkeeping": bookkeeping,
        "evaluation": evaluation,
    }
    for piece in pieces.values():
        piece()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in pieces}
    for _ in range(rounds):
        for name, piece in pieces.items():
            start = clock()
            piece()
            samples[name].append(clock() - start)
    return {name: median(values) for name, values in samples.items()}


# ---------------------------------------------------------------------------------------------------------------
# 3. Whole command


def bench_compare(runs: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="steplr-bench-"))
    compare = [sys.executable, "-m", "steplr", "compare", "qwerty", "--seeds", "10", "--out", str(folder), "--force"]
    import_torch = [sys.executable, "-c", "import torch"]

    def wall(argv: list[str]) -> float:
        start = clock()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return clock() - start

    try:
        wall(import_torch)  # warm the file cache
        compare_s, torch_s = [], []
        for _ in range(runs):
            compare_s.append(wall(compare))
            torch_s.append(wall(import_torch))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "runs": runs,
        "compare_s": median(compare_s),
        "compare_all": compare_s,
        "torch_s": median(torch_s),
        "torch_all": torch_s,
    }


# ---------------------------------------------------------------------------------------------------------------
# 4. Peak memory: one program per child process


def run_mode(mode: str) -> None:
    """Body of a child started with ``--only MODE``: run one program and print its own peak RSS as JSON."""
    torch.set_num_threads(1)
    start = clock()
    if mode == "qwerty-notes":
        notes_qwerty(load_qwerty(), SEED)
    elif mode == "qwerty-ours":
        ours_qwerty(load_qwerty(), SEED)
    elif mode == "fashion-notes":
        train_set, test_set = load_fashion_raw()
        notes_fashion(train_set, test_set, SEED)
    elif mode == "fashion-ours":
        ours_fashion(load_mnist(kind="fashion-mnist"), SEED)
    elif mode != "idle":
        raise SystemExit(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    seconds = clock() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"mode": mode, "seconds": seconds, "self_maxrss_kib": peak_kib}))


def measure_memory(argv: list[str]) -> tuple[float | None, str]:
    """Peak RSS in MiB of ``argv`` run alone, and where the number came from."""
    use_time = TIME_BIN.exists()
    full = [str(TIME_BIN), "-v", *argv] if use_time else argv
    done = subprocess.run(full, check=True, capture_output=True, text=True)
    if use_time:
        found = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", done.stderr)
        if found:
            return int(found.group(1)) / 1024, "/usr/bin/time -v"
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["self_maxrss_kib"] / 1024, "child ru_maxrss"
    return None, "not available"


def bench_memory() -> list[tuple[str, float | None, str]]:
    script = str(Path(__file__).resolve())
    programs: dict[str, list[str]] = {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "this script, --only idle (imports torch and steplr, no data)": [sys.executable, script, "--only", "idle"],
        "Qwerty, notes' loop (1 run)": [sys.executable, script, "--only", "qwerty-notes"],
        "Qwerty, steplr train (1 run)": [sys.executable, script, "--only", "qwerty-ours"],
        "Fashion-MNIST, notes' pipeline (5 epochs)": [sys.executable, script, "--only", "fashion-notes"],
        "Fashion-MNIST, steplr train (5 epochs)": [sys.executable, script, "--only", "fashion-ours"],
    }
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="steplr-bench-"))
    programs["steplr compare qwerty --seeds 10"] = [
        sys.executable,
        "-m",
        "steplr",
        "compare",
        "qwerty",
        "--seeds",
        "10",
        "--out",
        str(folder),
        "--force",
    ]
    try:
        for name, argv in programs.items():
            mib, source = measure_memory(argv)
            rows.append((name, mib, source))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Report


def yes_no(flag: bool) -> str:
    return "yes" if flag else "**no**"


IN_LOOP = ("gather", "forward_backward", "adam_step_fused", "bookkeeping", "evaluation")  # what train() does


def profile_note(fashion: dict[str, Any]) -> str:
    p = fashion["profile"]
    epoch = fashion["ours_epoch_s"]
    rest = epoch - sum(p[k] for k in IN_LOOP)
    cut_autograd = p["forward_backward"] - p["manual_forward_backward"]
    best_adam = min(("adam_step", "adam_step_foreach", "adam_step_fused"), key=lambda k: p[k])
    cut_adam = p["adam_step_fused"] - p[best_adam]  # train() uses Adam(fused=True) already
    fused_saving = p["adam_step"] - p["adam_step_fused"]
    cut_gather = p["gather"] - min(p["gather"], p["gather_once"])
    leanest = epoch - cut_autograd - cut_adam - cut_gather
    notes_epoch = fashion["notes_epoch_s"]
    adam_text = (
        f"train() already uses `Adam(fused=True)`, {1000 * fused_saving:.0f} ms per epoch less than "
        f"Adam's default CPU step (a Python loop over the tensors)"
    )
    if cut_gather > 0:
        gather_text = (
            f"one shuffled copy of the training set per epoch, sliced into views, instead of a "
            f"fancy-indexed gather per batch about {1000 * cut_gather:.0f} ms"
        )
    else:
        gather_text = (
            f"the per-batch gather stays: one shuffled copy of the whole training set per epoch is "
            f"slower ({1000 * p['gather_once']:.0f} ms against {1000 * p['gather']:.0f} ms)"
        )
    return (
        f"What could be cut: the two matmuls of each batch are only {100 * p['matmul_floor'] / epoch:.0f}% of our "
        f"epoch; the rest is fixed cost per batch (938 batches of 64, so every microsecond per batch is about "
        f"1 ms per epoch). Measured alternatives: the same gradients by hand instead of autograd would save about "
        f"{1000 * cut_autograd:.0f} ms per epoch; {adam_text}; {gather_text}. The "
        f"Python loop itself, the history and the scheduler (epoch minus the pieces train() runs, timed alone) "
        f"come to about {1000 * rest:.0f} ms. With the cuts that help, an epoch would take about "
        f"{1000 * leanest:.0f} ms (hand-written gradients are model-specific, so train() keeps autograd), "
        f"{notes_epoch / leanest:.2f}x faster than the notes' pipeline instead of the "
        f"measured {fashion['speedup']:.2f}x; the matmul floor alone would be "
        f"{notes_epoch / p['matmul_floor']:.0f}x. The notes' per-sample pipeline costs "
        f"{1000 * notes_epoch:.0f} ms per epoch here: its per-sample PIL round trip and collation cost about "
        f"{1e6 * (notes_epoch - epoch) / 60000:.0f} us per image more than our whole epoch does per image."
    )


def report(
    q: dict[str, Any], f: dict[str, Any], c: dict[str, Any], memory: list[tuple[str, float | None, str]], total_s: float
) -> str:
    p = f["profile"]
    epoch = f["ours_epoch_s"]
    same = q["same_test_acc"] and q["same_weights"]
    acc_gap = abs(f["notes_acc"] - f["ours_acc"])
    notes_epoch_label = "5-epoch runs" if f["notes_epochs"] == 5 else "**1 epoch only** (a run was too slow)"
    lines = [
        "# Experiment benchmark results",
        "",
        f"Written by `benchmarks/bench_experiments.py` on {time.strftime('%Y-%m-%d')}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, {platform.machine()}, "
        f"`torch.set_num_threads(1)` on both sides. The whole benchmark took {total_s:.0f} s.",
        "",
        f"## Qwerty: one 20-epoch run (median of {q['pairs']} alternating pairs, after a warm-up run of each)",
        "",
        "| pipeline | s per run | final test acc (mean over the pairs' seeds) |",
        "| --- | ---: | ---: |",
        f"| notes: TensorDataset + DataLoader, torch StepLR | {q['notes_s']:.3f} | {100 * q['notes_acc']:.2f}% |",
        f'| steplr `train(recipe_config("qwerty"))` | {q["ours_s"]:.3f} | {100 * q["ours_acc"]:.2f}% |',
        f"| **speed-up (notes / ours, median of pair ratios)** | **{q['speedup']:.2f}x** | |",
        "",
        f"Same results (seed {SEED}; the notes' loop given steplr's initial weights, drawn under "
        "`fork_rng` + `manual_seed`, and its `randperm` batch order through a sampler): per-epoch test accuracy "
        f"identical: {yes_no(q['same_test_acc'])}; per-epoch train loss identical: {yes_no(q['same_train_loss'])}; "
        f"per-epoch train accuracy identical: {yes_no(q['same_train_acc'])}; learning rates identical (the notes' "
        f"list is ours shifted by one): {yes_no(q['same_lrs'])}; final weights bit-identical: "
        f"{yes_no(q['same_weights'])} (max abs difference {q['weights_max_diff']:.3g}).",
        "",
        f"## Fashion-MNIST: the notes' 5-epoch protocol (median of {f['pairs']} alternating pairs of "
        f"{notes_epoch_label}, after a 1-epoch warm-up of each)",
        "",
        "| pipeline | s per epoch | final test acc (mean over the pairs' seeds) |",
        "| --- | ---: | ---: |",
        f"| notes: torchvision-style per-sample PIL image + ToTensor, DataLoader | {f['notes_epoch_s']:.3f} | "
        f"{100 * f['notes_acc']:.2f}% |",
        f'| steplr `train(recipe_config("fashion-mnist"))` | {epoch:.3f} | {100 * f["ours_acc"]:.2f}% |',
        f"| **speed-up (notes / ours, median of pair ratios)** | **{f['speedup']:.2f}x** | |",
        "",
        f"Where our epoch goes (each piece timed alone over one epoch of 938 batches; median of "
        f"{PROFILE_ROUNDS} interleaved rounds; shares are of the measured epoch, {1000 * epoch:.0f} ms):",
        "",
        "| piece of one epoch | ms | share of our epoch |",
        "| --- | ---: | ---: |",
        *[
            f"| {label} | {1000 * p[key]:.1f} | {100 * p[key] / epoch:.0f}% |"
            for key, label in [
                ("matmul_floor", "**matmul floor**: `x @ W.T` and `g.T @ x` per batch, nothing else"),
                ("gather", "gather the shuffled batches with `index_select` (as train() does)"),
                ("gather_once", "instead: one shuffled copy per epoch, sliced into views"),
                ("forward_backward", "autograd: zero_grad, forward, cross_entropy, backward"),
                ("manual_forward_backward", "same gradients by hand, no autograd (addmm, softmax, mm)"),
                ("adam_step", "`Adam.step()` alone, default (for-loop over tensors)"),
                ("adam_step_foreach", "`Adam(foreach=True).step()` alone"),
                ("adam_step_fused", "`Adam(fused=True).step()` alone"),
                ("bookkeeping", "per-batch `loss.item()`, accuracy count, LR read"),
                ("evaluation", "end-of-epoch evaluation on the 10,000 test images"),
            ]
        ],
        f"| rest: Python loop, history, scheduler, interactions (epoch minus {', '.join(IN_LOOP)}) | "
        f"{1000 * (epoch - sum(p[k] for k in IN_LOOP)):.1f} | "
        f"{100 * (epoch - sum(p[k] for k in IN_LOOP)) / epoch:.0f}% |",
        "",
        profile_note(f),
        "",
        f"## Whole command (median of {c['runs']} runs, interleaved)",
        "",
        "| command | median (s) | all runs (s) |",
        "| --- | ---: | ---: |",
        f"| `steplr compare qwerty --seeds 10` | {c['compare_s']:.2f} | "
        f"{', '.join(f'{s:.2f}' for s in c['compare_all'])} |",
        f'| `python -c "import torch"` | {c["torch_s"]:.2f} | {", ".join(f"{s:.2f}" for s in c["torch_all"])} |',
        "",
        "## Peak memory (max RSS of each program run alone in a child process)",
        "",
        "| program | peak RSS (MiB) | measured with |",
        "| --- | ---: | --- |",
        *[f"| {name} | {'n/a' if mib is None else f'{mib:.0f}'} | {source} |" for name, mib, source in memory],
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "| --- | ---: | --- |",
        f"| Qwerty at least 2x faster than the notes' loop | {q['speedup']:.2f}x | {yes_no(q['speedup'] >= 2)} |",
        f"| Qwerty: same results given the same weights and batch order | "
        f"{'bit-identical' if same else 'differs'} | {yes_no(same)} |",
        f"| Fashion-MNIST at least 4x faster, same accuracy (within 1 point) | {f['speedup']:.2f}x, "
        f"{100 * acc_gap:.2f} pt apart | {yes_no(f['speedup'] >= 4 and acc_gap <= 0.01)} |",
        f"| `steplr compare qwerty --seeds 10` under 10 s | {c['compare_s']:.2f} s | {yes_no(c['compare_s'] < 10)} |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", choices=MODES, help="run one program for the memory table and print its max RSS")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; print, do not write RESULTS.md")
    args = parser.parse_args()
    if args.only:
        run_mode(args.only)
        return
    torch.set_num_threads(1)
    started = clock()
    quick = args.quick
    qwerty = bench_qwerty(2 if quick else QWERTY_PAIRS)
    print(f"qwerty done at {clock() - started:.0f} s", file=sys.stderr)
    fashion = bench_fashion(1 if quick else FASHION_PAIRS, 2 if quick else PROFILE_ROUNDS)
    print(f"fashion done at {clock() - started:.0f} s", file=sys.stderr)
    compare = bench_compare(1 if quick else COMPARE_RUNS)
    print(f"compare done at {clock() - started:.0f} s", file=sys.stderr)
    memory = bench_memory()
    text = report(qwerty, fashion, compare, memory, clock() - started)
    if not quick:
        write_section("experiments", text)
    print(text)


if __name__ == "__main__":
    main()
