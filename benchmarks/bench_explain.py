"""``steplr explain`` and ``steplr plot`` at the longest run they take (``--epochs 20000000``), for every schedule kind.

Each command runs as a child process; its wall time is measured around it, and its peak resident set size is the
``ru_maxrss`` that ``os.wait4`` returns for that one child (``resource.struct_rusage``). This script imports no
NumPy or matplotlib itself, so the children start from a small parent (a forked child's ``ru_maxrss`` starts from
its parent's RSS).

"after" is the working tree. "before" (``--before``) is the same package with ``explain.py`` and ``plots.py`` as
they were when explain evaluated the schedule at every step: a copy of ``src/steplr`` in a temporary folder, the two
files taken from git, put first on ``PYTHONPATH``. Those runs are slow and large (issue 9 saw 100 s and 5.9 GB for
the cosine), so each is stopped after ``--timeout`` seconds and held under ``--memory-cap`` GiB (RLIMIT_DATA); the
table says when that happened.

Results go to the ``explain`` section of benchmarks/RESULTS.md (other sections are kept) and are printed.

Run: ``.venv/bin/python benchmarks/bench_explain.py`` (about two minutes on a 2-core machine), ``--before`` adds the
old code (up to ``2 x kinds x --timeout`` more); ``--rounds N`` (default 3) runs of each "after" command, median;
``--quick`` runs one round and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = "20000000"  # steplr.schedules.explain.MAX_STEPS, not imported: the parent stays small
KINDS: dict[str, list[str]] = {
    "cosine": ["--schedule", "cosine"],
    "cosine, t_max 100 (periodic)": ["--schedule", "cosine", "--t-max", "100"],
    "step, step_size 1, gamma 0.999999": ["--schedule", "step", "--step-size", "1", "--gamma", "0.999999"],
    "step, step_size 10, gamma 0.1 (defaults)": ["--schedule", "step"],
    "exponential, gamma 0.999999": ["--schedule", "exponential", "--gamma", "0.999999"],
    "multistep 5M,10M,15M": ["--schedule", "multistep", "--milestones", "5000000,10000000,15000000"],
    "constant": ["--schedule", "constant"],
    "warm-up 1M + cosine": ["--schedule", "cosine", "--warmup", "1000000"],
    "warm-up 20 + step 1, gamma 0.999999": [
        "--schedule",
        "step",
        "--step-size",
        "1",
        "--gamma",
        "0.999999",
        "--warmup",
        "20",
    ],
}
# The line that marks explain.py as evaluating every step.
PER_STEP = "lrs = resolved.lr(base_lr, np.arange(total, dtype=np.int64))"


@dataclass
class Run:
    seconds: float
    peak_mb: float
    status: str  # "ok", or why the run did not finish


def run_child(argv: Sequence[str], env: dict[str, str], timeout: float, memory_cap: int | None) -> Run:
    """Run ``argv``; wall time, the child's own peak RSS (os.wait4), and whether it finished."""

    def limits() -> None:
        os.setsid()  # its own process group, so a timeout stops it and anything it started
        if memory_cap is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_cap, memory_cap))

    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=limits)
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        os.killpg(child.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, stop)
    timer.start()
    try:
        assert child.stderr is not None
        err = child.stderr.read()  # until the child closes it (exits), so the pipe never fills
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keeps Popen from waiting again
    if stopped.is_set():
        verdict = f"stopped after {timeout:g} s"
    elif child.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        verdict = "MemoryError at the cap" if "MemoryError" in last[0] else f"exit {child.returncode}: {last[0]}"
    else:
        verdict = "ok"
    return Run(seconds, usage.ru_maxrss / 1024, verdict)


def commands(kind: list[str], image: Path) -> dict[str, list[str]]:
    head = [sys.executable, "-m", "steplr"]
    return {
        "explain": [*head, "explain", "--epochs", EPOCHS, *kind],
        "plot": [*head, "plot", "--epochs", EPOCHS, *kind, "-o", str(image), "--force"],
    }


def old_package(scratch: Path) -> tuple[Path, str]:
    """src/steplr with explain.py and plots.py from the last commit that evaluated every step; its folder and commit."""

    def show(commit: str, name: str) -> str:
        return subprocess.run(
            ["git", "show", f"{commit}:src/steplr/{name}"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout

    history = subprocess.run(
        ["git", "log", "--format=%h", "--", "src/steplr/explain.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.split()
    newest = next((i for i, c in enumerate(history) if PER_STEP in show(c, "explain.py")), None)
    if newest is None:
        raise SystemExit("no commit of src/steplr/explain.py holds the per-step code")
    # Just before the commit that removed the per-step code (both files as they were then), or HEAD if none did.
    commit = "HEAD" if newest == 0 else f"{history[newest - 1]}^"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", commit], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.strip()
    package = scratch / "before" / "steplr"
    shutil.copytree(ROOT / "src" / "steplr", package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("explain.py", "plots.py"):
        (package / name).write_text(show(commit, name), encoding="utf-8")
    return package.parent, commit


def check_package(env: dict[str, str], expected: Path) -> None:
    where = subprocess.run(
        [sys.executable, "-c", "import steplr; print(steplr.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if Path(where).resolve().parent != expected.resolve():
        raise SystemExit(f"expected steplr from {expected}, got {where}")


def cell(run: Run | None) -> tuple[str, str]:
    if run is None:
        return "", ""
    if run.status != "ok":
        return f"{run.status} ({run.seconds:.1f} s)", f"{run.peak_mb:,.0f} when stopped"
    return f"{run.seconds:.2f}", f"{run.peak_mb:,.0f}"


def report(
    after: dict[tuple[str, str], list[Run]],
    before: dict[tuple[str, str], Run],
    commit: str | None,
    rounds: int,
    timeout: float,
    cap_gib: float,
    elapsed: float,
) -> str:
    lines = [
        f"# explain and plot at the cap (`--epochs {EPOCHS}`)",
        "",
        f"`benchmarks/bench_explain.py`, {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; {elapsed:.0f} s in all. Each command is a fresh process: wall "
        "time around it, peak RSS = its own `ru_maxrss` (`os.wait4`). After: the working tree, median of "
        f"{rounds} runs (peak: the largest)."
        + (
            f" Before: `explain.py` and `plots.py` of {commit} (every step evaluated), one run each, stopped after "
            f"{timeout:g} s and held under {cap_gib:g} GiB."
            if commit
            else ""
        ),
        "",
        "| schedule | command | after: time (s) | after: peak RSS (MB) |"
        + (" before: time (s) | before: peak RSS (MB) |" if commit else ""),
        "| --- | --- | ---: | ---: |" + (" ---: | ---: |" if commit else ""),
    ]
    for (kind, command), runs in after.items():
        ok = [r for r in runs if r.status == "ok"]
        if len(ok) == len(runs):
            now = f"{statistics.median(r.seconds for r in runs):.2f}", f"{max(r.peak_mb for r in runs):,.0f}"
        else:
            now = cell(next(r for r in runs if r.status != "ok"))
        row = f"| {kind} | {command} | {now[0]} | {now[1]} |"
        if commit:
            old = cell(before.get((kind, command)))
            row += f" {old[0]} | {old[1]} |"
        lines.append(row)
    lines += [
        "",
        "The issue's figures for the old code: `explain --schedule cosine` 100 s and 5.9 GB; `--step-size 1 "
        "--gamma 0.999999` and `plot` at this size ran for minutes. Now explain works from the schedule's "
        "structure: a stretch of decays, or of cosine or warm-up steps, whose rates provably all differ and run "
        "one way costs a few evaluations; a short-period cosine is one period repeated; only a cosine's turning "
        "points (and schedules steplr does not know) are evaluated step by step, in chunks of 2**18 steps. plot "
        "draws at most ~3,000 exact change points per curve; its rows include matplotlib's import and drawing.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", action="store_true", help="also run the per-step code from git")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is stopped")
    parser.add_argument("--memory-cap", type=float, default=8.0, help="GiB of data each 'before' run may use")
    parser.add_argument("--quick", action="store_true", help="one round, print only")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="steplr-bench-explain-"))
    try:
        env = dict(os.environ)
        after: dict[tuple[str, str], list[Run]] = {}
        for kind, flags in KINDS.items():
            for command, child in commands(flags, scratch / "lr.png").items():
                after[(kind, command)] = [run_child(child, env, args.timeout, None) for _ in range(rounds)]
                print(kind, command, after[(kind, command)], flush=True)
        before: dict[tuple[str, str], Run] = {}
        commit = None
        if args.before:
            folder, commit = old_package(scratch)
            old_env = dict(env, PYTHONPATH=os.pathsep.join([str(folder), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
            check_package(old_env, folder / "steplr")
            cap = int(args.memory_cap * (1 << 30))
            for kind, flags in KINDS.items():
                for command, child in commands(flags, scratch / "lr-before.png").items():
                    before[(kind, command)] = run_child(child, old_env, args.timeout, cap)
                    print("before", kind, command, before[(kind, command)], flush=True)
        text = report(after, before, commit, rounds, args.timeout, args.memory_cap, time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(text)
    if not args.quick:
        from _results import write_section  # benchmarks/ is sys.path[0] when run as a script

        write_section("explain", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
