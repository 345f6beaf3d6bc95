"""``--model SPEC`` and ``--data SPEC``: a user's model factory and data loader, found by ``path/to/file.py:name``
or ``module.path:name``.

Each file or module is imported once per command (``--model`` and ``--data`` may name the same one), the data
loaded once. Everything that can go wrong in the user's code (a missing file, an error while importing it, no such
function, ``load()`` raising or returning the wrong thing) becomes one :class:`~steplr.cli.args.UsageError` line
naming the flag: ``main`` prints it and exits with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from steplr.cli.args import UsageError
from steplr.errors import SteplrError

__all__ = ["add_model_options", "UserCode", "split_spec", "check_model_flags", "user_errors"]


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--data`` (a user's model in place of a recipe)."""
    parser.add_argument(
        "--model",
        default=None,
        metavar="SPEC",
        help="your own model in place of a recipe: path/to/file.py:build_net or module.path:build_net, a function "
        "returning a fresh torch nn.Module (called under each run's seed); needs --data. Its runs default to sgd, "
        "lr 0.01, batch size 32, 10 epochs, the scheduler stepped once an epoch",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="SPEC",
        help="with --model: path/to/file.py:load or module.path:load, a function returning (x_train, y_train, "
        "x_test, y_test) tensors or (train_dataset, test_dataset); integer labels are classes, float targets a "
        "regression (use --loss mse)",
    )


def split_spec(spec: str, flag: str) -> tuple[str, str]:
    """``"where:name"`` -> ``(where, name)``; the last colon splits, so a Windows path's drive letter stays."""
    where, colon, name = spec.rpartition(":")
    if not colon or not where.strip() or not name.strip():
        raise UsageError(f"{flag} must be path/to/file.py:function or module.path:function, got {spec!r}")
    if not name.isidentifier():
        raise UsageError(f"{flag} {spec}: {name!r} is not a function name")
    return where.strip(), name.strip()


class UserCode:
    """The user's files and modules of one command, each imported once."""

    def __init__(self) -> None:
        self.modules: dict[str, ModuleType] = {}

    def function(self, spec: str, flag: str) -> Callable[..., Any]:
        """The function ``spec`` names (imported once per file or module)."""
        where, name = split_spec(spec, flag)
        module = self._module(where, spec, flag)
        found = getattr(module, name, None)
        if found is None:
            raise UsageError(f"{flag} {spec}: {where} has no function {name!r}")
        if not callable(found):
            raise UsageError(f"{flag} {spec}: {name} is a {type(found).__name__}, not a function")
        return found  # type: ignore[no-any-return]

    def _module(self, where: str, spec: str, flag: str) -> ModuleType:
        is_file = where.endswith(".py") or os.sep in where or "/" in where
        key = str(Path(where).resolve()) if is_file else where
        if key not in self.modules:
            self.modules[key] = _import_file(Path(where), spec, flag) if is_file else _import_module(where, spec, flag)
        return self.modules[key]

    def load_data(self, spec: str, loss: str) -> Any:
        """Call ``spec``'s function once; its result checked as data (:func:`steplr.experiments.user.as_data`)."""
        from steplr.experiments.user import as_data

        load = self.function(spec, "--data")
        try:
            loaded = load()
        except Exception as error:  # the user's code: one line, not a traceback
            raise UsageError(f"--data {spec}: {_name(load)}() failed: {_error(error)}") from None
        try:
            return as_data(loaded, loss)
        except SteplrError as error:
            raise UsageError(f"--data {spec}: {error}") from None


def _name(function: Any) -> str:
    return str(getattr(function, "__name__", "load"))


def _error(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _import_file(path: Path, spec: str, flag: str) -> ModuleType:
    """Import a user's .py file as a module of its own (its folder on sys.path while it imports, for its own
    imports); its name in sys.modules is the file's stem, so pickles and labels name it."""
    if not path.is_file():
        raise UsageError(f"{flag} {spec}: no file {path}")
    name = path.stem if path.stem.isidentifier() else "steplr_user_module"
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None or loader.loader is None:
        raise UsageError(f"{flag} {spec}: {path} is not a Python file")
    module = importlib.util.module_from_spec(loader)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        loader.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # the user's code: one line, not a traceback
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise UsageError(f"{flag} {spec}: importing {path} failed: {_error(error)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _import_module(where: str, spec: str, flag: str) -> ModuleType:
    """Import ``module.path`` (the current folder searched first, as ``python -m`` would)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as error:
        if error.name is not None and (where == error.name or where.startswith(error.name + ".")):
            raise UsageError(f"{flag} {spec}: no module {where!r} (nor a file {where})") from None
        raise UsageError(f"{flag} {spec}: importing {where} failed: {_error(error)}") from None
    except (Exception, SystemExit) as error:
        raise UsageError(f"{flag} {spec}: importing {where} failed: {_error(error)}") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def check_model_flags(args: argparse.Namespace) -> bool:
    """Whether the command trains a user's model (``--model``); a recipe and ``--model`` together, one of
    ``--model`` and ``--data`` without the other, or a recipe with a flag only a user's model reads, refused."""
    model, data = getattr(args, "model", None), getattr(args, "data", None)
    if model is None and data is None:
        if args.recipe is None:
            raise UsageError("give a recipe (qwerty, digits, mnist or fashion-mnist), or --model and --data")
        if getattr(args, "loss", None) not in (None, "cross_entropy"):
            raise UsageError(f"--loss {args.loss} applies to --model; the recipes classify with cross_entropy")
        return False
    if args.recipe is not None:
        raise UsageError(f"give a recipe or --model, not both (got {args.recipe} and --model)")
    if data is None:
        raise UsageError("--model needs --data SPEC: a function returning your data")
    if model is None:
        raise UsageError("--data needs --model SPEC (a recipe brings its own data)")
    if args.data_dir is not None or args.no_download:
        flag = "--data-dir" if args.data_dir is not None else "--no-download"
        raise UsageError(f"{flag} applies to the recipes' datasets, not to --data")
    return True


@contextmanager
def user_errors(args: argparse.Namespace) -> Iterator[None]:
    """An error about the model or the data (``model: ...``, ``data: ...``) named by the flag that gave it."""
    try:
        yield
    except SteplrError as error:
        text = str(error)
        for prefix, flag in (("model: ", "--model"), ("data: ", "--data")):
            if text.startswith(prefix):
                raise UsageError(f"{flag} {getattr(args, flag[2:])}: {text.removeprefix(prefix)}") from None
        raise
