"""`steplr train` and `steplr compare` end to end, and the report in a real headless browser."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from steplr.cli.main import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_train_prints_the_notes_log_and_writes_the_run(tmp_path):
    out = tmp_path / "run"
    code, text, err = run("train", "digits", "--out", str(out))
    assert code == 0, err
    lines = text.splitlines()
    assert all(re.fullmatch(r"Epoch \d, Loss: \d+\.\d{4}, LR: \d\.\d{6}", line) for line in lines[0:10:2])
    assert all(re.fullmatch(r"Test Accuracy: \d+\.\d{2}%", line) for line in lines[1:10:2])
    assert [line.split("LR: ")[1] for line in lines[0:10:2]] == [
        "0.001000",
        "0.001000",
        "0.000100",
        "0.000100",
        "0.000010",
    ]
    names = {p.name for p in out.iterdir()}
    assert names == {
        "config.json",
        "history.csv",
        "history.json",
        "lr.png",
        "loss.png",
        "accuracy.png",
        "checkpoint.pt",
    }
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == "digits" and config["optimizer"] == "adam"
    assert config["schedule"] == {"kind": "step", "step_size": "2ep", "gamma": 0.1}
    with open(out / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and float(rows[2]["lr"]) == pytest.approx(1e-4)


def test_train_overrides_are_saved_and_a_full_folder_is_refused(tmp_path):
    out = tmp_path / "q"
    code, _, _ = run("train", "qwerty", "--epochs", "2", "--gamma", "0.1", "--step-size", "1ep", "--out", str(out))
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["epochs"], config["schedule"]["gamma"], config["schedule"]["step_size"]) == (2, 0.1, "1ep")
    code, text, err = run("train", "qwerty", "--out", str(out))
    assert code == 2 and text == "" and err.count("\n") == 1 and "is not empty" in err
    code, _, err = run("train", "qwerty", "--out", str(out), "--resume", "--lr", "0.5")
    assert (
        code == 2
        and err
        == "steplr: error: --resume continues the saved run; these settings differ: --lr 0.5 (the run has 0.01)\n"
    )
    code, _, err = run("train", "qwerty", "--out", str(out), "--resume", "--lr", "0.01", "--step-size", "1")
    assert code == 0, err  # the saved settings, said again, are accepted (a bare 1 is 1ep)
    code, text, _ = run("train", "qwerty", "--out", str(out), "--epochs", "1", "--force")
    assert code == 0 and text.startswith("Epoch 1, Loss:")


def test_train_resume_completes_a_run(tmp_path):
    out = tmp_path / "r"
    assert run("train", "qwerty", "--epochs", "3", "--out", str(out))[0] == 0
    full = json.loads((out / "history.json").read_text())
    code, text, _ = run("train", "qwerty", "--out", str(out), "--resume")
    assert code == 0 and "Epoch" not in text  # nothing left to train
    assert json.loads((out / "history.json").read_text()) == full


def test_diverging_run_says_where_and_exits_1(tmp_path):
    code, _, err = run("train", "qwerty", "--lr", "1e6", "--schedule", "none", "--out", str(tmp_path / "d"))
    assert code == 1
    assert re.fullmatch(r"steplr: loss became (nan|inf) at epoch \d+, iteration \d+: stopped \(history saved\)\n", err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "cifar"], "unknown recipe 'cifar'"),
        (["train", "qwerty", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["train", "qwerty", "--batch-size", "0"], "argument --batch-size: must be a positive integer, got '0'"),
        (
            ["train", "qwerty", "--schedule", "lineal"],
            "unknown schedule 'lineal'; expected one of none, constant, step, multistep, exponential, cosine, plateau",
        ),
        (["train", "mnist", "--no-download"], "--data-dir"),
        (["compare", "qwerty", "--seeds", "0"], "argument --seeds: must be a positive integer, got '0'"),
        (["compare", "qwerty", "--seed", "3"], "unrecognized arguments: --seed"),
        (["compare", "qwerty", "--milestones", "2,x"], "argument --milestones"),
        (["train", "qwerty", "--validation", "1.5"], "expected a fraction in [0, 1)"),
        (["train", "qwerty", "--schedule", "plateau", "--warmup", "1"], "warmup applies to closed-form"),
        (["compare", "qwerty", "--schedules", "none,warp"], "--schedules must name some of"),
        (["compare", "qwerty", "--schedules", "step,step"], "names a schedule twice"),
    ],
)
def test_bad_run_input_is_one_line_and_exit_2(tmp_path, argv, message):
    code, out, err = run(*argv, "--out", str(tmp_path / "x"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("steplr: error: ") and message in err


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "qwerty"
    code, text, err = run(
        "compare", "qwerty", "--seeds", "2", "--epochs", "6", "--schedules", "none,step,plateau", "--out", str(out)
    )
    assert code == 0, err
    return out, text


def test_compare_prints_the_table_and_writes_the_files(compared):
    out, text = compared
    assert text.startswith("qwerty: 3 schedules x 2 seeds, validation 0.167 of the training set\n")
    assert re.search(r"^step\s+\d+\.\d{2}%\s+\d+\.\d{2}% ± \d+\.\d{2}\s+[+-]\d+\.\d{2} pts \[", text, re.MULTILINE)
    assert f"report: {out / 'report.html'}" in text
    assert {p.name for p in out.iterdir()} >= {"lr.png", "loss.png", "accuracy.png", "report.html", "summary.csv"}
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["rows"]
    assert [row["schedule"] for row in rows] == ["none", "step", "plateau"]
    fields = {
        "val_acc_mean",
        "test_acc_mean",
        "test_acc_sd",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "p",
        "p_adjusted",
        "verdict",
    }
    for row in rows[1:]:
        assert fields <= set(row) and 0 <= row["test_acc_mean"] <= 1 and 0 <= row["val_acc_mean"] <= 1
        assert row["verdict"] in ("better", "worse", "no detectable difference")
        assert f"- {row['schedule']}: " in text
    assert "Chosen on validation: " in text
    config = json.loads((out / "config.json").read_text())
    assert config["seeds"] == [0, 1] and config["schedules"]["plateau"]["validation"] == pytest.approx(1 / 6)


def test_report_is_self_contained(compared):
    page = (compared[0] / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"(src|href)=\"https?://", page)
    assert "iterations 0-94 (epochs 0-4)" in page  # the explain plan of StepLR (600 examples: 19 batches)
    assert "<th>val acc</th><th>test acc</th>" in page and "validation split held out" in page
    assert "Holm" in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's package)")
def test_report_renders_in_headless_chromium(compared, tmp_path):
    report = compared[0] / "report.html"
    url = report.resolve().as_uri()
    dom = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile-dom'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-loaded="yes"' in dom
    sizes = re.findall(r'data-natural-size="(\d+)x(\d+)"', dom)
    assert len(sizes) == 3 and all(int(w) > 0 and int(h) > 0 for w, h in sizes)
    assert re.search(r'<table id="summary">.*<td>step</td>', dom, re.DOTALL)
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            "--window-size=1100,1600",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        timeout=120,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1100) and pixels.std() > 0.05


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)",
)
def test_the_real_fashion_mnist_protocol(tmp_path):
    code, _text, err = run("train", "fashion-mnist", "--out", str(tmp_path / "fm"), "--no-download")
    assert code == 0, err
    history = json.loads((tmp_path / "fm" / "history.json").read_text())
    assert len(history["iteration_lrs"]) == 5 * 938  # 60,000 images in batches of 64
    assert [round(e["lr"], 12) for e in history["epochs"]] == [1e-3, 1e-3, 1e-4, 1e-4, 1e-5]
    assert history["epochs"][-1]["test_acc"] > 0.80  # the notes' linear model reaches about 84% here


def test_progress_bar_only_on_a_terminal(tmp_path):
    argv = [sys.executable, "-m", "steplr", "train", "qwerty", "--epochs", "2", "--out", str(tmp_path / "tty")]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a fresh pty is 0 columns wide
    child = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    child.wait(timeout=60)
    os.close(leader)
    assert child.returncode == 0
    assert b"it/s" in seen or b"s/it" in seen  # tqdm's rate field: a bar was drawn
    piped = subprocess.run([*argv[:-1], str(tmp_path / "pipe")], capture_output=True, timeout=60)
    assert piped.returncode == 0 and b"it/s" not in piped.stdout + piped.stderr


def test_bad_config_leaves_no_trace_and_force_keeps_a_good_run(tmp_path):
    fresh = tmp_path / "fresh"
    code, _, err = run("train", "qwerty", "--schedule", "lineal", "--out", str(fresh))
    assert code == 2 and not fresh.exists()
    good = tmp_path / "good"
    assert run("train", "qwerty", "--epochs", "2", "--out", str(good))[0] == 0
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    code, _, err = run("train", "qwerty", "--schedule", "lineal", "--force", "--out", str(good))
    assert code == 2 and "lineal" in err
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    # A replacement that diverges before its first checkpoint leaves the old run as it was, and no staging folder.
    code, _, _err = run("train", "qwerty", "--lr", "1e6", "--schedule", "none", "--force", "--out", str(good))
    assert code == 1
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]
    # A replacement that trains replaces it.
    assert run("train", "qwerty", "--epochs", "1", "--force", "--out", str(good))[0] == 0
    assert json.loads((good / "config.json").read_text())["epochs"] == 1


def test_resume_starts_over_without_a_checkpoint_and_extends_a_finished_run(tmp_path):
    out = tmp_path / "r"
    assert run("train", "qwerty", "--epochs", "2", "--out", str(out))[0] == 0
    (out / "checkpoint.pt").unlink()  # as if killed before its first checkpoint
    code, text, err = run("train", "qwerty", "--out", str(out), "--resume")
    assert code == 0, err
    assert text.count("Epoch ") == 2
    code, text, err = run("train", "qwerty", "--out", str(out), "--resume", "--epochs", "4")
    assert code == 0, err
    assert text.splitlines()[0].startswith("Epoch 3, ")
    assert run("train", "qwerty", "--epochs", "4", "--out", str(tmp_path / "straight"))[0] == 0
    assert json.loads((out / "history.json").read_text()) == json.loads(
        (tmp_path / "straight" / "history.json").read_text()
    )
    code, _, err = run("train", "qwerty", "--out", str(out), "--resume", "--epochs", "3")
    assert code == 2 and "cannot be shortened" in err


def test_bare_durations_are_epochs_and_plan_warnings_go_to_stderr(tmp_path):
    code, text, err = run("train", "qwerty", "--step-size", "5", "--epochs", "6", "--out", str(tmp_path / "q"))
    assert code == 0 and err == ""
    assert json.loads((tmp_path / "q" / "config.json").read_text())["schedule"]["step_size"] == "5ep"
    lrs = [line.split("LR: ")[1] for line in text.splitlines() if line.startswith("Epoch")]
    assert lrs == ["0.010000"] * 5 + ["0.005000"]
    code, text, err = run(
        "train", "digits", "--step-size", "1", "--gamma", "0.01", "--epochs", "4", "--out", str(tmp_path / "d")
    )
    assert code == 0
    assert err.startswith("steplr: warning: step: the learning rate falls to")
    assert [line.split("LR: ")[1] for line in text.splitlines() if line.startswith("Epoch")] == [
        "0.001000",
        "0.000010",
        "1.000000e-07",
        "1.000000e-09",
    ]


def test_compare_takes_every_override_and_shows_the_plans(tmp_path):
    out = tmp_path / "c"
    code, text, err = run(
        "compare",
        "digits",
        "--seeds",
        "2",
        "--epochs",
        "4",
        "--schedules",
        "multistep,cosine",
        "--milestones",
        "2,3",
        "--t-max",
        "3",
        "--eta-min",
        "1e-5",
        "--warmup",
        "1",
        "--out",
        str(out),
    )
    assert code == 0, err
    # Every plan names its settings, the defaults too (the recipe's gamma 0.1, the warm-up's start factor).
    assert "plan none (warm-up 1ep from x0.1), lr 0.001, per epoch" in text
    assert "plan multistep (milestones 2ep,3ep, gamma 0.1, warm-up 1ep from x0.1), lr 0.001, per epoch" in text
    assert "plan cosine (t_max 3ep, eta_min 1e-05, warm-up 1ep from x0.1)" in text
    page = (out / "report.html").read_text()
    assert "epoch 0: lr 0.0001" in page  # the warm-up starts at 0.1 x lr
    configs = json.loads(
        re.search(r"<h2>Configs</h2><pre>(.*?)</pre>", page, re.DOTALL).group(1).replace("&quot;", '"')
    )
    assert configs["multistep"]["schedule"]["milestones"] == ["2ep", "3ep"]
    assert configs["cosine"]["schedule"]["t_max"] == "3ep"
    code, text, err = run(
        "compare",
        "digits",
        "--seeds",
        "2",
        "--epochs",
        "3",
        "--schedules",
        "plateau",
        "--plateau-patience",
        "0",
        "--gamma",
        "0.3",
        "--out",
        str(tmp_path / "p"),
    )
    assert code == 0, err
    assert (
        "plan plateau (gamma 0.3, patience 0), lr 0.001: x0.3 after 0 epochs without a better validation loss" in text
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "qwerty", "--t-max", "3"], "--t-max applies to cosine; not to step"),
        (["train", "qwerty", "--schedule", "cosine", "--step-size", "2"], "--step-size applies to step; not to cosine"),
        (["train", "qwerty", "--plateau-patience", "1"], "--plateau-patience applies to plateau; not to step"),
        (
            ["compare", "qwerty", "--schedules", "step", "--milestones", "2"],
            "--milestones applies to multistep; not to none, step",
        ),
        (["compare", "qwerty", "--schedules", "step,plateau", "--warmup", "1"], "--warmup does not apply to plateau"),
        (["train", "qwerty", "--out", ""], "--out must name a folder, got ''"),
        (["sweep", "qwerty", "--validation", "0"], "--validation 0 leaves nothing to choose"),
    ],
)
def test_settings_no_schedule_reads_are_refused(tmp_path, argv, message):
    code, out, err = run(*argv) if "--out" in argv else run(*argv, "--out", str(tmp_path / "x"))
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_compare_with_diverging_runs_reports_instead_of_crashing(tmp_path):
    out = tmp_path / "lr5"
    code, text, err = run("compare", "qwerty", "--lr", "1e4", "--seeds", "3", "--epochs", "3", "--out", str(out))
    assert code == 0, err
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert rows[0]["diverged"] == 3 and len(rows[0]["diverged_at"]) == 3
    assert "none diverged in 3 of 3 seeds" in text and (out / "report.html").is_file()


def test_unwritable_out_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, text, err = run("compare", "qwerty", "--out", str(blocker / "sub"))
    assert code == 2 and text == "" and "--out" in err and "not writable" in err
    code, _, err = run("sweep", "qwerty", "--out", str(blocker / "sub"))
    assert code == 2 and "not writable" in err


@pytest.mark.parametrize("command", ["train", "compare", "sweep"])
def test_every_option_has_help_and_shows_its_default(command):
    from steplr.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
    code, text, _ = run(command, "--help")
    assert code == 0
    assert "default" in text and "--force" in text
    if command != "sweep":
        assert "(default: the recipe's value)" in text.replace("\n", " ").replace("  ", " ") or "recipe's value" in text


def test_train_with_a_validation_split_logs_it_and_records_it(tmp_path):
    out = tmp_path / "v"
    code, text, err = run(
        "train", "qwerty", "--epochs", "2", "--validation", "0.25", "--schedule", "plateau", "--out", str(out)
    )
    assert code == 0, err
    assert re.search(r"^Validation Accuracy: \d+\.\d{2}%$", text, re.MULTILINE)
    assert json.loads((out / "config.json").read_text())["validation"] == 0.25
    history = json.loads((out / "history.json").read_text())
    assert len(history["iteration_lrs"]) == 2 * 17  # 720 - 180 held out = 540 examples: 17 batches of 32
    assert all(0 <= e["val_acc"] <= 1 for e in history["epochs"])
    with open(out / "history.csv", newline="") as handle:
        assert next(csv.reader(handle)) == [
            "epoch",
            "train_loss",
            "train_acc",
            "val_loss",
            "val_acc",
            "test_loss",
            "test_acc",
            "lr",
        ]


def test_an_interrupted_command_leaves_nothing_half_made(tmp_path):
    from steplr.cli.runs import claim_out

    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt), claim_out(fresh, force=False) as claim:
        (claim.folder / "lr.png").write_bytes(b"half of the outputs")
        raise KeyboardInterrupt
    assert not fresh.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KeyboardInterrupt), claim_out(empty, force=False) as claim:
        (claim.folder / "lr.png").write_bytes(b"half of the outputs")
        raise KeyboardInterrupt
    assert empty.is_dir() and list(empty.iterdir()) == []  # as it was found
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.html").write_text("the old run")
    with pytest.raises(KeyboardInterrupt), claim_out(old, force=True) as claim:
        assert claim.folder != old and claim.folder.parent == tmp_path
        (claim.folder / "report.html").write_text("half of a new run")
        raise KeyboardInterrupt
    assert (old / "report.html").read_text() == "the old run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "old"]


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    import signal
    import time

    out = tmp_path / "c"
    child = subprocess.Popen(
        [sys.executable, "-m", "steplr", "compare", "qwerty", "--seeds", "4", "--epochs", "2000", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:  # the folder is claimed just before training
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err.endswith("steplr: interrupted\n") and "Traceback" not in err
    assert not out.exists()


def test_a_replacing_run_folder_keeps_the_umask_mode(tmp_path):
    old_mask = os.umask(0o022)
    try:
        out = tmp_path / "m"
        assert run("train", "qwerty", "--epochs", "1", "--out", str(out))[0] == 0
        assert run("train", "qwerty", "--epochs", "1", "--out", str(out), "--force")[0] == 0
    finally:
        os.umask(old_mask)
    assert out.stat().st_mode & 0o777 == 0o755
    assert (out / "checkpoint.pt").stat().st_mode & 0o777 == 0o644


def test_only_train_suggests_resume_for_a_full_folder(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    assert "pass --resume to continue it or --force" in run("train", "qwerty", "--out", str(full))[2]
    err = run("compare", "qwerty", "--out", str(full))[2]
    assert "--resume" not in err and "pass --force to replace it" in err


def test_plan_warnings_print_before_training_and_the_report_repeats_them(tmp_path):
    out = tmp_path / "w"
    code, text, err = run("compare", "digits", "--seeds", "2", "--schedules", "step", "--out", str(out))
    assert code == 0, err
    warning = "step: the learning rate falls to 1e-05"
    assert err.startswith(f"steplr: warning: {warning}")
    assert warning not in text  # said once on the console, before training
    assert any(note.startswith(warning) for note in json.loads((out / "summary.json").read_text())["notes"])
    page = (out / "report.html").read_text()
    assert "Before you trust these numbers" in page and warning in page
    code, text, err = run(
        "sweep", "digits", "--step-size", "2", "--gamma", "0.1", "--seeds", "2", "--out", str(tmp_path / "s")
    )
    assert code == 0 and "steplr: warning: step 2ep, gamma 0.1, lr 0.001: the learning rate falls to" in err
    assert "the learning rate falls to" in (tmp_path / "s" / "report.html").read_text()


def test_train_and_compare_take_a_polynomial_decay(tmp_path):
    out = tmp_path / "poly"
    code, text, err = run(
        "train", "qwerty", "--schedule", "polynomial", "--power", "2", "--epochs", "2", "--out", str(out)
    )
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["schedule"] == {"kind": "polynomial", "total": None, "power": 2.0, "end_lr": 0.0}
    lrs = json.loads((out / "history.json").read_text())["iteration_lrs"]
    total = len(lrs)  # the whole run, per iteration
    assert lrs == [0.01 * (1.0 - t / total) ** 2.0 for t in range(total)]  # torch's closed form, bit for bit
    code, text, err = run(
        "compare",
        "qwerty",
        "--schedules",
        "none,polynomial",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--out",
        str(tmp_path / "c"),
    )
    assert code == 0, err
    assert "plan polynomial (total the run, power 1, end_lr 0), lr 0.01, per iteration" in text
    assert "- polynomial: " in text
    code, _, err = run(
        "compare",
        "qwerty",
        "--schedules",
        "none,polynomial",
        "--power",
        "2",
        "--gamma",
        "0.5",
        "--out",
        str(tmp_path / "d"),
    )
    assert (
        code == 2 and "--gamma applies to step, multistep, exponential, plateau, cyclic; not to none, polynomial" in err
    )


def _flat(config: dict) -> dict:
    """A config in the format of runs written before the schedule spec: the name, and every kind's settings."""
    schedule = config.pop("schedule")
    return {
        **config,
        "schedule": schedule.pop("kind"),
        "step_size": "5ep",
        "gamma": 0.5,
        "milestones": [],
        "t_max": None,
        "eta_min": 0.0,
        "plateau_patience": 2,
        "warmup": None,
        "warmup_start_factor": 0.1,
        **schedule,
    }


def test_a_run_written_in_the_old_flat_config_format_still_resumes(tmp_path):
    import torch

    old, fresh = tmp_path / "old", tmp_path / "fresh"
    assert run("train", "qwerty", "--epochs", "2", "--gamma", "0.1", "--step-size", "1", "--out", str(old))[0] == 0
    state = torch.load(old / "checkpoint.pt", weights_only=True)
    state["config"] = _flat(state["config"])
    torch.save(state, old / "checkpoint.pt")
    flat = _flat(json.loads((old / "config.json").read_text()))
    assert flat["schedule"] == "step" and flat["step_size"] == "1ep" and flat["gamma"] == 0.1
    (old / "config.json").write_text(json.dumps(flat))
    code, _, err = run("train", "qwerty", "--epochs", "3", "--out", str(old), "--resume")
    assert code == 0, err
    assert run("train", "qwerty", "--epochs", "3", "--gamma", "0.1", "--step-size", "1", "--out", str(fresh))[0] == 0
    resumed, uninterrupted = (json.loads((d / "history.json").read_text()) for d in (old, fresh))
    assert resumed == uninterrupted
    assert json.loads((old / "config.json").read_text())["schedule"] == {
        "kind": "step",
        "step_size": "1ep",
        "gamma": 0.1,
    }
