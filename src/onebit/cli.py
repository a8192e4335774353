"""The ``onebit`` command line: a few subcommands, recipes instead of flags.

    onebit train --recipe fashion_mnist_bnn --set optim.lr=1e-3 epochs=20 [--resume]
    onebit eval runs/fashion_mnist_bnn/best.pt [--set data.root=...]
    onebit summary small_cnn --method bnn [--image-size 28]
    onebit compare --methods bnn xnor bireal --model cnn28 --data fashion_mnist --seeds 3 --budget cpu
    onebit export bireal18 -o bireal18.onebit        (or a checkpoint: runs/.../best.pt)
    onebit run bireal18.onebit [--input x.npy] [--threads 2]
    onebit bench bireal18.onebit --threads 1 2

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m onebit.cli train --recipe ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable, Sequence

__all__ = ["main"]


def _recipe_or_error(name: str, overrides: Sequence[str], error: Callable[[str], None]):
    """The recipe with its overrides applied; bad names, keys or values become argparse errors."""
    from .train.recipe import load_recipe

    try:
        return load_recipe(name).override(list(overrides))
    except (ValueError, FileNotFoundError) as exc:
        error(str(exc))


#: What the data-set loaders raise for a missing, unreadable or damaged data set (the message says what
#: is wrong and how to get or repair the data), or for a loader whose optional dependency is missing.
_DATA_ERRORS = (OSError, ValueError, ImportError)


def _data_set_error(args: argparse.Namespace, exc: BaseException) -> bool:
    """Whether ``exc`` should be shown as a one-line error: the command runs as a program (``args.program``)
    and ``exc`` was raised while a data set was being built (``onebit.train.build.build_dataset`` is on its
    traceback), not later during training, where a traceback is what a bug report needs; or ``exc`` is a
    CheckpointError (``--resume`` from a truncated ``last.pt``, a damaged distillation teacher)."""
    from .checkpoint import CheckpointError
    from .train.build import build_dataset

    if not getattr(args, "program", False) or not isinstance(exc, _DATA_ERRORS):
        return False
    if isinstance(exc, CheckpointError):  # a damaged checkpoint to resume from or distil from: its message says which
        return True
    return any(frame.f_code is build_dataset.__code__ for frame, _ in traceback.walk_tb(exc.__traceback__))


def _report(args: argparse.Namespace, exc: BaseException) -> int:
    print(f"onebit {args.command}: error: {exc}", file=sys.stderr, flush=True)
    return 1


def cmd_train(args: argparse.Namespace) -> int:
    """Resolve the recipe, print it, train it (rank 0 prints and writes the run directory)."""
    from .train.run import train_recipe

    recipe = _recipe_or_error(args.recipe, args.overrides, args.error)
    main_rank = os.environ.get("RANK", "0") == "0"
    if main_rank:
        print(f"# resolved recipe (saved as {recipe.out_dir}/recipe.yaml)\n{recipe.to_yaml()}", flush=True)
    try:
        result = train_recipe(recipe, resume=args.resume)
    except _DATA_ERRORS as exc:
        if not _data_set_error(args, exc):
            raise
        return _report(args, exc)
    if main_rank:
        best = "n/a" if result.best_val_acc is None else f"{100 * result.best_val_acc:.2f}% (epoch {result.best_epoch})"
        print(f"done: best validation accuracy {best}; run directory: {result.out_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Accuracy and loss of a checkpoint on its recipe's validation data (``--set`` may change it)."""
    from .train.build import build_val_loader, load_trained_model
    from .train.distributed import resolve_device
    from .train.fit import evaluate

    if not os.path.exists(args.checkpoint):
        args.error(f"checkpoint {args.checkpoint!r} does not exist")
    try:
        model, recipe, ckpt = load_trained_model(args.checkpoint)
        recipe = recipe.override(list(args.overrides))
    except ValueError as exc:
        args.error(str(exc))
    device = resolve_device(recipe.device)
    try:
        loader = build_val_loader(recipe)
    except _DATA_ERRORS as exc:
        if not _data_set_error(args, exc):
            raise
        return _report(args, exc)
    metrics = evaluate(model.to(device), loader, device=device)
    extra = ckpt["extra"]
    trained = extra.get("metrics") or (extra.get("history") or [{}])[-1]
    print(f"{args.checkpoint}: accuracy {100 * metrics['accuracy']:.2f}%  loss {metrics['loss']:.4f}"
          f"  ({metrics['count']} samples, {recipe.data.name}:{recipe.data.val_split}; epoch {extra.get('epoch')})")
    if trained.get("flip_ratio") is not None:
        print(f"flip ratio of binary weights in its last training epoch: {100 * trained['flip_ratio']:.3f}%")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Print ``onebit.summary`` of a model (zoo or built-in), binarized with ``--method`` if given."""
    from . import summary
    from .train.build import binarized_model
    from .train.recipe import ModelConfig

    method = None if args.method in (None, "none", "float") else args.method
    try:
        cfg = ModelConfig(name=args.model, num_classes=args.num_classes, in_chans=args.in_chans, method=method)
        model = binarized_model(cfg)
    except (ValueError, TypeError) as exc:
        args.error(str(exc))
    summary(model, (1, args.in_chans, args.image_size, args.image_size))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Train every method on one backbone/data/budget/seeds; print and write the comparison table."""
    from . import methods
    from .compare import BUDGETS, compare, markdown_table

    names = args.methods or ["all"]
    if names == ["all"]:
        names = methods.list()
    unknown = [m for m in names if m not in methods.list() and m != "float"]
    if unknown:
        args.error(f"unknown methods {unknown}; valid: {methods.list()} or 'all'")
    if args.budget not in BUDGETS:
        args.error(f"unknown budget {args.budget!r}; valid: {sorted(BUDGETS)}")
    try:
        rows = compare(names, model=args.model, data=args.data, seeds=args.seeds, budget=args.budget,
                       out_dir=args.out_dir, overrides=args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        args.error(str(exc))
    print(markdown_table(rows), end="")
    print(f"written: {args.out_dir}/table.md, results.json, accuracy_vs_latency.png")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onebit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func, error=p.error)
        return p

    def overrides(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="recipe overrides such as optim.lr=1e-3 data.batch_size=256 (repeatable)")

    train = command("train", cmd_train, "train a model from a recipe")
    train.add_argument("--recipe", required=True, help="a shipped recipe name or a YAML file")
    overrides(train)
    train.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt when it exists")

    ev = command("eval", cmd_eval, "evaluate a checkpoint written by `onebit train`")
    ev.add_argument("checkpoint", help="a last.pt or best.pt")
    overrides(ev)

    sm = command("summary", cmd_summary, "per-layer table of 1-bit vs 32-bit parameters, memory and MACs")
    sm.add_argument("model", help="a model of onebit.models or a built-in (small_cnn)")
    sm.add_argument("--method", default=None, help="binarize with this method of onebit.methods (default: float)")
    sm.add_argument("--num-classes", type=int, default=10)
    sm.add_argument("--in-chans", type=int, default=1)
    sm.add_argument("--image-size", type=int, default=28)

    cmp = command("compare", cmd_compare, "train methods on one footing and tabulate accuracy, size and speed")
    cmp.add_argument("--methods", nargs="+", default=None, help="methods of onebit.methods, or 'all' (default)")
    cmp.add_argument("--model", default="cnn28", help="backbone from onebit.models (default cnn28)")
    cmp.add_argument("--data", default="fashion_mnist", help="data set of onebit.data (default fashion_mnist)")
    cmp.add_argument("--seeds", type=int, default=1, help="seeds per method (default 1)")
    cmp.add_argument("--budget", default="cpu", help="tiny, cpu (< 1 h on 2 cores) or full (GPU)")
    cmp.add_argument("--out-dir", default="runs/compare", help="where runs and the table go; rerun to resume")
    overrides(cmp)

    from .cli_engine import add_engine_commands  # export, run, bench

    add_engine_commands(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``onebit`` script; returns the exit status.

    Run as a program (``argv`` None: the ``onebit`` script, ``python -m onebit.cli``), a missing or damaged
    data set in ``train`` / ``eval`` is printed as ``onebit train: error: <what is wrong and how to get the
    data>`` with exit status 1, no traceback. Called from Python with an explicit ``argv``, the loader's
    ``FileNotFoundError`` / ``ValueError`` propagates instead, for the caller to handle."""
    args = _parser().parse_args(argv)
    args.program = argv is None
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
