"""The fashion-cnn recipe: a small CNN on the real Fashion-MNIST, where step decay is expected to matter."""

import io
import json
from pathlib import Path

import pytest

from steplr.cli.main import main
from steplr.experiments.compare import recipe_config
from steplr.training import data
from steplr.training.engines import choose_engine
from steplr.training.models import SmallCNN, build_model

needs_fashion = pytest.mark.skipif(
    not Path(data.FASHION_MNIST_SYSTEM_DIR).is_dir(), reason="needs Debian's dataset-fashion-mnist"
)


def test_the_recipe_is_the_classic_setting_of_step_decay():
    config = recipe_config("fashion-cnn")
    assert (config.dataset, config.model, config.optimizer) == ("fashion-mnist-12k", "cnn", "sgd")
    assert (config.lr, config.momentum, config.weight_decay, config.batch_size) == (0.1, 0.9, 5e-4, 128)
    assert (config.epochs, config.interval) == (15, "epoch")
    assert config.schedule.kind == "step" and config.schedule.warmup is None
    assert (config.schedule.settings()["step_size"], config.schedule.settings()["gamma"]) == ("5ep", 0.1)
    assert isinstance(build_model(config.model, 784, 10), SmallCNN)


@needs_fashion
def test_auto_trains_the_cnn_one_model_at_a_time_and_batched_stacks_it():
    """Its activations (about 13 MiB a model and batch) overflow the caches when stacked: one at a time is faster."""
    config = recipe_config("fashion-cnn")
    fashion = data.load_dataset(config.dataset, download=False)
    engine, reason = choose_engine([config, config], fashion)
    assert engine == "sequential" and "MiB of activations per model and batch" in reason
    assert choose_engine([config, config], fashion, engine="batched")[0] == "functional"


@pytest.mark.integration
@needs_fashion
def test_compare_fashion_cnn_runs_on_the_subset(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    argv = ["compare", "fashion-cnn", "--seeds", "1", "--epochs", "1", "--schedules", "step", "--out", str(tmp_path)]
    assert main(argv, out, err) == 0, err.getvalue()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["schedule"] for row in summary["rows"]] == ["none", "step"]
    # One epoch of SGD at 0.1 with momentum already classifies most of the test set.
    assert all(row["test_acc_mean"] > 0.5 for row in summary["rows"])
    config = json.loads((tmp_path / "config.json").read_text())
    assert "fashion-cnn" in json.dumps(config)
