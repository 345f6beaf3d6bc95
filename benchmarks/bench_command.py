"""Whole-command benchmark of a single run: ``steplr train qwerty`` against the floor of any torch training script.

What is measured, in one run:

1. Wall time of two whole processes, alternating (which goes first swaps every round), medians over the rounds:
   (a) the floor, ``python -c "import torch; torch.optim.SGD([...], lr=0.1)"`` (the first optimizer constructor
   of a process imports torch's compiler stack, which every torch training script pays), and
   (b) ``steplr train qwerty --out DIR`` into a fresh folder. The ratio b / a is the figure of merit (target:
   at most 1.15).
2. Where one ``steplr train qwerty`` spends its seconds: the same command run in-process by this script
   (``--probe``) with ``time.perf_counter`` wrapped around its steps (importing the CLI, importing torch and the
   training modules, data loading, the epochs, checkpoint and history writes, the figures), and
   ``python -X importtime`` on the real command, summarised by the imports made at top level (each with what it
   pulled in) and by package.
3. The figures alone, in fresh processes that have already imported torch (as a run has when it draws): import
   of the plotting module plus the three run figures, drawn through pyplot (``plots.py`` as it was before it
   dropped pyplot, read from git) against ``matplotlib.figure.Figure`` + Agg (the current module), alternating.

Results go to the ``command`` section of benchmarks/RESULTS.md (other sections are kept) and are printed.

Run: ``.venv/bin/python benchmarks/bench_command.py`` (about three minutes on a 2-core machine);
``--rounds N`` changes the number of rounds, ``--quick`` does 3 rounds and writes nothing.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # first thing: the probe counts this script's own imports from here

import argparse
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLOOR = "import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)"
# The floor with the exit steplr's command takes (gc.freeze before the interpreter shuts down): the fair comparison
# for what steplr itself adds.
FLOOR_FROZEN = FLOOR + "; import gc; gc.freeze()"
TARGET = 1.15
# The last commit whose plots.py still drew through pyplot: its parent is "before".
PYPLOT_REMOVED = ("git", "log", "-1", "--format=%H", "-S", "import matplotlib.pyplot", "--", "src/steplr/plots.py")
# Packages the breakdown must mention even when absent (the standard library is grouped as "stdlib").
PACKAGES = ("torch", "matplotlib", "numpy", "tqdm", "scipy", "sklearn", "optuna", "steplr")


def steplr_command(out: Path) -> list[str]:
    script = Path(sys.executable).with_name("steplr")  # what a user of the virtual environment runs
    head = [str(script)] if script.exists() else [sys.executable, "-m", "steplr"]
    return [*head, "train", "qwerty", "--out", str(out)]


def wall(argv: Sequence[str]) -> float:
    """Seconds of one whole process; its output is discarded, a failure stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return seconds


def alternate(rounds: int, sides: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Run every side once per round, the order rotating from round to round, after one warm-up of each."""
    names = list(sides)
    for name in names:
        sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(sides[name]())
    return times


def measure_command(rounds: int, scratch: Path) -> dict[str, list[float]]:
    count = iter(range(10**6))

    def run_steplr() -> float:
        return wall(steplr_command(scratch / f"run-{next(count)}"))  # a fresh folder every time

    return alternate(
        rounds,
        {
            "floor": lambda: wall([sys.executable, "-c", FLOOR]),
            "steplr": run_steplr,
            "floor, gc.freeze exit": lambda: wall([sys.executable, "-c", FLOOR_FROZEN]),
        },
    )


# --- 2. one instrumented run -----------------------------------------------------------------------------------


def probe(out: Path, plain_exit: bool) -> None:
    """Run ``steplr train qwerty --out OUT`` in this process with timers around its steps; print them as JSON.

    The wrapped functions are looked up by name and skipped when absent (the command's internals change); a
    step's time includes the imports it triggers. The process then exits as the ``steplr`` command does
    (``gc.freeze()`` first); ``plain_exit`` leaves that out, to measure what it saves.
    """
    timings: dict[str, float] = {}
    calls: dict[str, int] = {}

    def timed(module: Any, name: str, label: str) -> bool:
        inner = getattr(module, name, None)
        if inner is None:
            return False

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                timings[label] = timings.get(label, 0.0) + time.perf_counter() - start
                calls[label] = calls.get(label, 0) + 1

        setattr(module, name, wrapper)
        return True

    start = time.perf_counter()
    import steplr.cli.main as cli
    import steplr.cli.runs as cli_runs

    timings["import steplr.cli.main"] = time.perf_counter() - start
    start = time.perf_counter()
    import torch  # noqa: F401  (imported here so that its cost is a step of its own)

    import steplr.training.data as data
    import steplr.training.train as train

    timings["import torch, steplr.training.train, steplr.training.data"] = time.perf_counter() - start
    if not timed(cli_runs, "_load_data", "data"):
        timed(data, "load_dataset", "data")
    from steplr.training.plan import RunPlan

    for name in ("save_checkpoint", "write_history"):
        timed(train, name, "writes")
    timed(RunPlan, "optimizer", "optimizer")
    timed(train, "train", "train")
    timed(cli_runs, "_figures", "figures")
    start = time.perf_counter()
    code = cli.main(["train", "qwerty", "--out", str(out)], out=io.StringIO())
    timings["main()"] = time.perf_counter() - start
    timings["in-process"] = time.perf_counter() - _STARTED
    print(json.dumps({"code": code, "timings": timings, "calls": calls}), flush=True)
    if not plain_exit:
        import gc

        gc.freeze()


def measure_probes(rounds: int, scratch: Path) -> dict[str, list[dict[str, Any]]]:
    """Instrumented runs, alternating steplr's exit with a plain one; each result has its process wall."""
    results: dict[str, list[dict[str, Any]]] = {"steplr exit": [], "plain exit": []}
    count = iter(range(10**6))

    def side(name: str) -> Callable[[], float]:
        def run() -> float:
            argv = [sys.executable, str(Path(__file__).resolve()), "--probe", str(scratch / f"probe-{next(count)}")]
            argv += ["--plain-exit"] if name == "plain exit" else []
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
            total = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"probe failed:\n{done.stderr}")
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            result["process"] = total
            results[name].append(result)
            return total

        return run

    alternate(rounds, {name: side(name) for name in results})
    return {name: runs[1:] for name, runs in results.items()}  # without the warm-up


def breakdown_rows(runs: list[dict[str, Any]], empty_python: float) -> list[tuple[str, float]]:
    """Seconds of each step from interpreter start to process end: per run, then the median over the runs."""

    def row(r: dict[str, Any]) -> list[float]:
        t = r["timings"]
        get = lambda name: float(t.get(name, 0.0))  # noqa: E731
        inside = get("in-process")
        rest = get("main()") - get("data") - get("train") - get("figures")
        return [
            empty_python,
            inside
            - get("main()")
            - get("import steplr.cli.main")
            - get("import torch, steplr.training.train, steplr.training.data"),
            get("import steplr.cli.main"),
            get("import torch, steplr.training.train, steplr.training.data"),
            get("data"),
            get("optimizer"),
            get("train") - get("optimizer") - get("writes"),
            get("writes"),
            get("figures"),
            rest,
            r["process"] - inside - empty_python,
            r["process"],
        ]

    calls = runs[0]["calls"]
    names = [
        "interpreter start-up (`python -c pass`, measured alone)",
        "this script's own imports before the command (argparse, json, subprocess, ...)",
        "import steplr.cli.main",
        "import torch, steplr.training.train, steplr.training.data",
        "data loading (qwerty)",
        f"first optimizer constructor ({calls.get('optimizer', 0)} call; imports torch._dynamo)",
        "training: the epochs, without optimizer construction and writes",
        f"checkpoint and history writes ({calls.get('writes', 0)} calls)",
        "figures: import matplotlib and steplr.experiments.plots, draw and write 3 PNGs",
        "rest of `main()` (parsing, validation, config.json, messages)",
        "interpreter shutdown (process wall minus all of the above)",
        "**whole process**",
    ]
    table = [row(r) for r in runs]
    return [(name, statistics.median(values)) for name, values in zip(names, zip(*table))]


def importtime(scratch: Path) -> list[tuple[int, float, float, str]]:
    """(depth, self ms, cumulative ms, module) for every import of one real ``steplr train`` run, in order."""
    argv = [sys.executable, "-X", "importtime", "-m", "steplr", "train", "qwerty", "--out", str(scratch / "imports")]
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"importtime run failed:\n{done.stderr}")
    found = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$", line)
        if match:
            depth = (len(match.group(3)) - 1) // 2
            found.append((depth, int(match.group(1)) / 1000, int(match.group(2)) / 1000, match.group(4)))
    return found


def package(module: str) -> str:
    top = module.split(".")[0]
    return "stdlib" if top in sys.stdlib_module_names or top.startswith("_") else top


def top_level_imports(found: list[tuple[int, float, float, str]], count: int) -> list[tuple[str, float, str]]:
    """The costliest imports made at depth 0 (by the interpreter, steplr's modules or a function body), each with
    the packages it pulled in, largest first."""
    rows = []
    children: dict[str, float] = {}
    for depth, self_ms, cumulative, module in found:  # importtime lists children before their parent
        children[package(module)] = children.get(package(module), 0.0) + self_ms
        if depth == 0:
            pulled = ", ".join(
                f"{name} {ms:.0f}" for name, ms in sorted(children.items(), key=lambda kv: -kv[1]) if ms >= 5
            )
            rows.append((module, cumulative, pulled))
            children = {}
    return sorted(rows, key=lambda row: -row[1])[:count]


def by_package(found: list[tuple[int, float, float, str]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for _, self_ms, _, module in found:
        totals[package(module)] = totals.get(package(module), 0.0) + self_ms
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


# --- 3. figures with and without pyplot ------------------------------------------------------------------------

IMPORTS = {
    "pyplot": "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot",
    "Figure + Agg": "import matplotlib.figure, matplotlib.backends.backend_agg",
}


def figures_probe(which: str, source: str, history_dir: str, out: str) -> None:
    """With torch imported first (untimed, as in a run): import the plotting module (``source``: a file, or
    "steplr.experiments.plots"), or only matplotlib's entry point (``source`` "import-only"), then draw the three run
    figures of the history in ``history_dir`` into ``out``; print the times as JSON."""
    import importlib
    import importlib.util

    import torch  # noqa: F401

    from steplr.training.config import History

    history = History.from_dict(json.loads(Path(history_dir, "history.json").read_text()))
    start = time.perf_counter()
    if source == "import-only":
        exec(IMPORTS[which])  # the two ways in, nothing drawn
        print(json.dumps({"import": time.perf_counter() - start, "draw": 0.0}))
        return
    if source == "steplr.experiments.plots":
        module = importlib.import_module(source)
    else:  # the old module, loaded inside the steplr package so its relative imports resolve
        # It predates the layer folders: its `from .explain import` finds the module where it lives now.
        sys.modules.setdefault("steplr.explain", importlib.import_module("steplr.schedules.explain"))
        spec = importlib.util.spec_from_file_location("steplr._plots_before", source)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot load {source}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    imported = time.perf_counter()
    runs = {"step": [history]}
    module.plot_run_lrs(runs, Path(out, f"{which}-lr.png"))
    module.plot_run_metric(runs, "loss", Path(out, f"{which}-loss.png"))
    module.plot_run_metric(runs, "acc", Path(out, f"{which}-accuracy.png"))
    print(json.dumps({"import": imported - start, "draw": time.perf_counter() - imported}))


def pyplot_plots_source(scratch: Path) -> tuple[str, Path] | None:
    """(commit, file) of plots.py as it was just before it stopped using pyplot, or None without git history."""
    try:
        removed = subprocess.run(PYPLOT_REMOVED, capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
        if not removed:
            return None
        before = subprocess.run(
            ("git", "rev-parse", f"{removed}^"), capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
        text = subprocess.run(
            ("git", "show", f"{before}:src/steplr/plots.py"), capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    if "matplotlib.pyplot" not in text:
        return None
    path = scratch / "plots_with_pyplot.py"
    path.write_text(text)
    return before[:10], path


def measure_figures(rounds: int, scratch: Path, history_dir: Path) -> tuple[str, dict[str, list[dict[str, float]]]]:
    """Fresh processes, alternating: the old and the new module drawing the three figures, and matplotlib's two
    entry points imported alone."""
    found = pyplot_plots_source(scratch)
    sources = {
        "pyplot import only": "import-only",
        "Figure + Agg import only": "import-only",
        "Figure + Agg (now)": "steplr.experiments.plots",
    }
    commit = "unknown"
    if found is not None:
        commit, old = found
        sources = {f"pyplot (plots.py at {commit})": str(old), **sources}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sources}

    def side(name: str) -> Callable[[], float]:
        def run() -> float:
            which = "pyplot" if name.startswith("pyplot") else "Figure + Agg"
            argv = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--figures-probe",
                which,
                sources[name],
                str(history_dir),
                str(scratch),
            ]
            done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0 or done.stderr:
                raise SystemExit(f"figure probe ({name}) failed or warned:\n{done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[name].append(result)
            return float(result["import"] + result["draw"])

        return run

    alternate(rounds, {name: side(name) for name in sources})
    return commit, {name: runs[1:] for name, runs in results.items()}  # without the warm-up


# --- report ----------------------------------------------------------------------------------------------------


def report(
    rounds: int,
    command: dict[str, list[float]],
    probes: dict[str, list[dict[str, Any]]],
    empty_python: float,
    imports: list[tuple[int, float, float, str]],
    figures: tuple[str, dict[str, list[dict[str, float]]]],
    seconds: float,
) -> str:
    import torch

    floor, ours = statistics.median(command["floor"]), statistics.median(command["steplr"])
    frozen = statistics.median(command["floor, gc.freeze exit"])
    ratio = ours / floor
    pair_ratio = statistics.median(s / f for s, f in zip(command["steplr"], command["floor"]))
    lines = [
        "# Whole-command speed of a single run",
        "",
        f"Written by `benchmarks/bench_command.py` on {time.strftime('%Y-%m-%d')}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs. "
        f"The whole benchmark took {seconds:.0f} s.",
        "",
        f"## `steplr train qwerty` against the floor of a torch training script ({rounds} alternating rounds, "
        "after a warm-up of each)",
        "",
        "| command | median (s) | min (s) |",
        "| --- | ---: | ---: |",
        f'| floor: `python -c "{FLOOR}"` | {floor:.3f} | {min(command["floor"]):.3f} |',
        f"| `steplr train qwerty --out DIR` (fresh DIR) | {ours:.3f} | {min(command['steplr']):.3f} |",
        f"| **ratio steplr / floor (medians)** | **{ratio:.2f}x** | target <= {TARGET:.2f}x: "
        f"{'met' if ratio <= TARGET else 'not met'} |",
        f"| floor exiting as steplr does (`...; import gc; gc.freeze()`) | {frozen:.3f} | "
        f"{min(command['floor, gc.freeze exit']):.3f} |",
        f"| ratio steplr / that floor (what steplr adds on top of torch) | {ours / frozen:.2f}x | |",
        "",
        f"Median of the per-round ratios: {pair_ratio:.2f}x. `steplr` ends with `gc.freeze()` (see the "
        "breakdown below), which a plain torch script does not; the second ratio compares like with like.",
        "",
        f"## Where one run's seconds go (medians of {len(probes['steplr exit'])} instrumented runs, timers around "
        "the command's steps, in-process)",
        "",
        "| step | s |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {value:.3f} |" for name, value in breakdown_rows(probes["steplr exit"], empty_python)]
    fast = statistics.median(r["process"] for r in probes["steplr exit"])
    normal = statistics.median(r["process"] for r in probes["plain exit"])
    lines += [
        "",
        "A step's time includes the imports it triggers; this script imports torch before `main()`, so that import "
        "is a row of its own.",
        f"The command calls `gc.freeze()` before the interpreter shuts down (its final garbage collections then "
        f"skip every object alive, torch's modules above all): {fast:.3f} s per process, against {normal:.3f} s "
        "with a plain exit (alternating instrumented runs).",
        "",
        "## Imports of one `steplr train qwerty` (`python -X importtime`, which itself slows imports)",
        "",
        "Costliest imports made at top level (by the interpreter, a module, or a function body), with what each "
        "pulled in (ms of own import time per package, 5 ms and more):",
        "",
        "| import | cumulative (ms) | pulled in (ms) |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| `{module}` | {ms:.0f} | {pulled} |" for module, ms, pulled in top_level_imports(imports, 10)]
    totals = by_package(imports)
    lines += ["", "Own import time by package, whole run:", "", "| package | ms |", "| --- | ---: |"]
    lines += [f"| {name} | {ms:.0f} |" for name, ms in totals.items() if ms >= 1]
    missing = [name for name in PACKAGES if name not in totals]
    if missing:
        lines += ["", f"Not imported at all: {', '.join(missing)}."]
    _commit, results = figures
    lines += [
        "",
        f"## The three run figures, with and without pyplot ({rounds} alternating fresh processes with torch "
        "already imported, medians)",
        "",
        "| what | import (s) | draw lr.png + loss.png + accuracy.png (s) | total (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    totals_by_name = {}
    for name, runs in results.items():
        imp = statistics.median(r["import"] for r in runs)
        draw = statistics.median(r["draw"] for r in runs)
        total = statistics.median(r["import"] + r["draw"] for r in runs)
        totals_by_name[name] = total
        lines.append(f"| {name} | {imp:.3f} | {draw:.3f} | {total:.3f} |")
    before = next((v for k, v in totals_by_name.items() if k.startswith("pyplot (")), None)
    if before is not None:
        lines += [
            "",
            f"Saved per run by the current module: {before - totals_by_name['Figure + Agg (now)']:.3f} s. "
            "The old module imported pyplot inside its first figure, so its import column is near zero; the "
            "two import-only rows separate pyplot's own share from matplotlib's.",
        ]
    return "\n".join(lines) + "\n"


def empty_interpreter(rounds: int) -> float:
    return statistics.median(wall([sys.executable, "-c", "pass"]) for _ in range(rounds))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 rounds, print only")
    parser.add_argument("--probe", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--plain-exit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--figures-probe", nargs=4, metavar=("WHICH", "SOURCE", "HISTORY", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.probe:
        probe(Path(args.probe), args.plain_exit)
        return 0
    if args.figures_probe:
        figures_probe(*args.figures_probe)
        return 0
    rounds = 3 if args.quick else args.rounds
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="steplr-bench-command-"))
    try:
        print(f"whole command, {rounds} rounds ...", flush=True)
        command = measure_command(rounds, scratch)
        print("instrumented runs, importtime ...", flush=True)
        probes = measure_probes(max(3, rounds // 2), scratch)
        empty = empty_interpreter(rounds)
        imports = importtime(scratch)
        print("figures with and without pyplot ...", flush=True)
        figures = measure_figures(rounds, scratch, scratch / "run-0")
        text = report(rounds, command, probes, empty, imports, figures, time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(text)
    if not args.quick:
        from _results import write_section  # benchmarks/ is sys.path[0] when run as a script

        write_section("command", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
