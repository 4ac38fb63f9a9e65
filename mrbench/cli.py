"""Command line: `mrbench run`, `mrbench list`. User errors exit with code 2, failed cells with 1."""
from __future__ import annotations

import argparse
import sys

from .errors import UserError


def _parser() -> argparse.ArgumentParser:
    from .provenance import __version__

    p = argparse.ArgumentParser(prog="mrbench", description="Benchmark solvers of mixtures of linear regressions.")
    p.add_argument("--version", action="version", version=f"mrbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run suite × solvers × seeds and store the results")
    r.add_argument("--suite", default="quick", help="built-in suite NAME, NAME:SECTION, or a .toml file (default: quick)")
    r.add_argument("--where", help='filter on spec fields, e.g. "m == 5 and sigma == 1" (comparisons, and/or/not, in [...])')
    r.add_argument("--solvers", help="all | NAME,... | 'name[param=value,...]' (default: the suite's list, else all)")
    r.add_argument("--seeds", type=int, default=1, help="replicates per spec: seeds seed .. seed+N-1 (default 1)")
    r.add_argument("--out", default="results", help="results directory (default: results)")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    r.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="load solvers from a file (repeatable)")
    r.add_argument("--save-predictions", action="store_true", help="also store raw predictions (float32) per cell")
    r.add_argument("--dry-run", action="store_true", help="list the cells and what is stored; run nothing")
    r.add_argument("--force", action="store_true", help="redo cells already stored")
    r.add_argument("--quiet", action="store_true", help="no progress bar or leaderboard")
    r.add_argument("-j", "--jobs", type=int, default=1, help="local worker processes (default 1: this process)")
    r.add_argument("--executor", default="serial", choices=["serial", "dask"], help="serial (local) or dask")
    r.add_argument("--scheduler", help="Dask scheduler address for --executor dask, e.g. tcp://host:8786")
    r.add_argument("--timeout", help="hard limit per cell, e.g. 90s, 10m: an overrunning cell is killed")
    r.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    r.add_argument("--yes", action="store_true", help="run a grid of over 100,000 cells (refused without it)")
    r.add_argument("--memory-limit", metavar="SIZE",
                   help="refuse specs whose cells need more memory than this, e.g. 8G (default: the machine's memory)")

    rep = sub.add_parser("report", help="write the HTML report of a results directory")
    rep.add_argument("results", help="results directory")
    rep.add_argument("-o", "--output", help="output HTML file (default: RESULTS/_report.html)")
    rep.add_argument("--figures", help="also write every figure as PNG and SVG into this directory")
    rep.add_argument("--reference", help="solver label for the distance probe (default: every trained solver)")
    rep.add_argument("--claims", action="store_true", help="also print the claims scorecard on the console")
    rep.add_argument("--format", choices=("md", "csv", "latex"),
                     help="also write the leaderboards and the scorecard as tables beside the report: "
                          "_leaderboards.EXT and _claims.EXT (md: Markdown, csv, latex: booktabs tabular)")
    rep.add_argument("--suite", action="append", default=[], metavar="FILE",
                     help="a suite file whose claims to score (built-in suites are found by name; a path a "
                          "results directory names is never loaded)")

    rep.add_argument("--where", help='only the specs matching this, as in `mrbench run --where`')
    rep.add_argument("--solvers", help="only these solvers (NAME,...; a name selects its variants too)")

    lb = sub.add_parser("leaderboard", help="print (or write) the leaderboards of a results directory as a table")
    lb.add_argument("results", help="results directory")
    lb.add_argument("--format", default="text", choices=("text", "md", "csv", "latex"),
                    help="text (default), md (Markdown), csv, latex (booktabs tabular)")
    lb.add_argument("-o", "--output", help="write to this file instead of the console")
    lb.add_argument("--where", help='only the specs matching this, e.g. "m == 5 and sigma == 1"')
    lb.add_argument("--solvers", help="only these solvers (NAME,...; a name selects its variants too)")

    cmp = sub.add_parser("compare", help="compare the cells two results directories both hold (paired over prompts)")
    cmp.add_argument("a", help="results directory A (the baseline)")
    cmp.add_argument("b", help="results directory B")
    cmp.add_argument("--only-changed", action="store_true", help="list only cells that differ beyond 1.96 paired SE")
    cmp.add_argument("--where", help="only the specs matching this")
    cmp.add_argument("--solvers", help="only these solvers (NAME,...)")

    tr = sub.add_parser("train", help="train the transformer checkpoints a suite needs")
    tr.add_argument("--suite", default="quick",
                    help="built-in suite NAME, NAME:SECTION, or a .toml file whose specs need checkpoints (default: quick)")
    tr.add_argument("--where", help='filter on spec fields, as in `mrbench run`, e.g. "m == 10"')
    tr.add_argument("--seeds", type=int, default=1,
                    help="as in `mrbench run`: a fixed training set (n_train) differs per seed")
    tr.add_argument("--preset",
                    help="paper | small | cpu | cpu-pairs | tiny, or LAYERSxHEADSxWIDTH such as 4x4x96: that preset "
                         "for every spec; auto: the format `transformer` runs, trained if missing (default: each "
                         "transformer variant the suite's cells run, as its sections name them, the ones already "
                         "trained kept, the paper preset left to a GPU)")
    tr.add_argument("--recipe", default="cpu",
                    help="named recipe the options below override: cpu (2-core CPU, default) | default (GPU) | "
                         "pathak2023 (App. C of Pathak et al., GPU)")
    tr.add_argument("--steps", type=int, help="step budget")
    tr.add_argument("--seconds", type=float, help="training-seconds budget per checkpoint (whichever ends first)")
    tr.add_argument("--batch-size", type=int, help="prompts per step (default: the recipe's)")
    tr.add_argument("--lr", type=float, help="peak learning rate of AdamW (default: the recipe's, "
                                                "lowered to what the data family is known to train with: 1e-3 on the sample family)")
    tr.add_argument("--warmup", type=float, help="warm-up: a fraction of the budget if < 1, else steps")
    tr.add_argument("--dropout", type=float,
                    help="dropout of the model, with --preset; part of the checkpoint's key, as "
                         "transformer[dropout=...] (default 0; without --preset, the suite's per spec)")
    tr.add_argument("-j", "--jobs", type=int, default=1,
                    help="trainings side by side in local worker processes, the threads split between them "
                         "(-j 2 on two cores: one thread each), as in `mrbench run`")
    tr.add_argument("--executor", default="serial", choices=("serial", "dask"),
                    help="serial (this process, or -j workers) or dask: each training a task on --scheduler's cluster")
    tr.add_argument("--scheduler", help="with --executor dask: the scheduler address, tcp://HOST:PORT")
    tr.add_argument("--dry-run", action="store_true",
                    help="list the checkpoints it would train (or has: shipped, in the cache, a saved state) and the "
                         "training time each would take; train nothing")
    tr.add_argument("--curriculum", action=argparse.BooleanOptionalAction,
                    help="grow the number of pairs from 11 to all (by default half-way through the budget: "
                         "--curriculum-share)")
    tr.add_argument("--curriculum-share", type=float,
                    help="the share of the budget after the initial plateau over which the curriculum grows to whole "
                         "prompts (default: the recipe's, 0.5)")
    tr.add_argument("--curriculum-dims", action=argparse.BooleanOptionalAction,
                    help="with the curriculum, also grow the dimension from 5 to d (fresh prompts)")
    tr.add_argument("--position-weights", choices=("uniform", "oracle"),
                    help="oracle: divide each position's loss by the oracle's MSE there")
    tr.add_argument("--no-compile", action="store_true", help="do not torch.compile on CUDA")
    tr.add_argument("--eval-every", type=int, help="steps between evaluations")
    tr.add_argument("--eval-seconds", type=float, help="training seconds between evaluations")
    tr.add_argument("--patience", type=int,
                    help="a fixed training set (n_train) stops once this many evaluations on whole prompts have not "
                         "improved the held-out score by 0.1%% (default: the recipe's; cpu: 5; 0: never)")
    tr.add_argument("--resume", action="store_true",
                    help="continue from the saved training state (a larger budget extends the run); "
                         "exits 2 if there is none")
    tr.add_argument("--resume-or-start", action="store_true",
                    help="as --resume, but start afresh where no training state is saved")
    tr.add_argument("--state-every", type=float, default=120.0, metavar="SECONDS",
                    help="save the training state this often (also at the first evaluation, at the end, "
                         "and on Ctrl-C or SIGTERM; default 120)")
    tr.add_argument("--state-dir", help="where the training state is kept (default: the --out-dir)")
    tr.add_argument("--init-from", metavar="CHECKPOINT",
                    help="start from this checkpoint's weights (name or .safetensors path), e.g. to fine-tune")
    tr.add_argument("--force", action="store_true",
                    help="train also the checkpoints found (shipped or in the cache); a shipped one's new file "
                         "shadows the shipped model (in the package, replaces it)")
    tr.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    tr.add_argument("--out-dir", help="where to write (default: the user cache, $MRBENCH_CACHE or ~/.cache/mrbench)")

    ck = sub.add_parser("check", help="run the solver contract checks on a plugin file or a registered solver")
    ck.add_argument("target", help="a plugin FILE.py (every solver in it) or a registered solver NAME")

    ls = sub.add_parser("list", help="list solvers and suites")
    ls.add_argument("--plugin", action="append", default=[], metavar="FILE.py")
    ls.add_argument("--checkpoints", action="store_true",
                    help="list the transformer checkpoints instead: where, preset, training distribution, "
                         "prompts, training time, held-out ratio")
    return p


def _cmd_run(args) -> int:
    from .runner import any_failed, run

    results = run(suite=args.suite, solvers=args.solvers, seeds=args.seeds, out=args.out, where=args.where,
                  device=args.device, dry_run=args.dry_run, force=args.force, plugins=args.plugin,
                  save_predictions=args.save_predictions, progress=not args.quiet, jobs=args.jobs,
                  executor=args.executor, scheduler=args.scheduler, timeout=args.timeout,
                  yes=args.yes, memory_limit=args.memory_limit)
    if args.dry_run:
        return 0
    if not args.no_report:
        from .report import after_run

        after_run(results)
    print(f"results: {args.out}")
    return 1 if any_failed(results) or results.attrs.get("missing") else 0


def _cmd_report(args) -> int:
    from pathlib import Path

    from .errors import UserError
    from .report import build, report_path, write_html

    if not Path(args.results).is_dir():
        raise UserError(f"{args.results}: no such results directory")
    context, figures = build(args.results, args.reference, args.suite, args.where, args.solvers)
    html = write_html(context, figures, report_path(args.results, args.output), args.figures)
    print(f"report: {html}")
    if not (args.claims or args.format):
        return 0
    from .atomic import atomic_write
    from .claims import scorecard_text
    from .tables import board, render, render_claims

    found = context["scorecard"]  # the report's own, computed once
    if args.claims:
        print(scorecard_text(found) if found else "no claims: the suites of these results declare none")
    if args.format:
        ext = {"md": "md", "csv": "csv", "latex": "tex"}[args.format]
        tables = {"_leaderboards": render(board(args.results, args.where, args.solvers), args.format),
                  "_claims": render_claims(found, args.format)}
        for stem, text in tables.items():
            path = Path(html).parent / f"{stem}.{ext}"
            atomic_write(path, lambda f, text=text: f.write(text.encode()))
            print(f"{stem[1:]}: {path}")
    return 0


def _cmd_leaderboard(args) -> int:
    from pathlib import Path

    from .atomic import atomic_write
    from .tables import board, render

    text = render(board(args.results, args.where, args.solvers), args.format)
    if args.output:
        atomic_write(Path(args.output), lambda f: f.write(text.encode()))
        print(f"leaderboard: {args.output}")
    else:
        print(text, end="")
    return 0


def _cmd_compare(args) -> int:
    from .tables import compare, compare_text

    table = compare(args.a, args.b, args.where, args.solvers)
    print(compare_text(table, args.only_changed))
    return 1 if (table["change"] == "+").any() else 0  # as a CI gate: B got worse somewhere


def _cmd_train(args) -> int:
    import signal
    from pathlib import Path

    from .errors import UserError
    from .runner import resolve_device
    from .training import train_suite
    from .transformer.config import RECIPES, make_recipe, preset_shape

    if args.dropout is not None and args.preset is None:
        raise UserError("--dropout needs --preset: without it, each spec takes the dropout its suite gives")
    try:
        preset_shape("cpu" if args.preset in (None, "auto") else args.preset)
    except ValueError as exc:
        raise UserError(f"--preset: {exc}") from None
    if args.recipe not in RECIPES:
        raise UserError(f"--recipe {args.recipe!r}: valid recipes are {', '.join(RECIPES)}")
    given = dict(steps=args.steps, seconds=args.seconds, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                 curriculum=args.curriculum, curriculum_dims=args.curriculum_dims, curriculum_share=args.curriculum_share, position_weights=args.position_weights, eval_every=args.eval_every,
                 eval_seconds=args.eval_seconds, compile=False if args.no_compile else None,
                 patience=args.patience)
    recipe = make_recipe(args.recipe, **given)
    if (recipe.steps < 1 or recipe.batch_size < 1 or args.seeds < 1 or recipe.lr <= 0 or recipe.warmup < 0
            or (recipe.seconds is not None and recipe.seconds <= 0) or not args.state_every > 0
            or not 0 < recipe.curriculum_share <= 1):
        raise UserError("--steps, --batch-size and --seeds must be >= 1, --lr, --seconds and --state-every > 0, "
                        "--warmup >= 0, --curriculum-share in (0, 1]")
    # a polite kill saves the training state as Ctrl-C does
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    train_suite(args.suite, args.where, args.preset, recipe, resolve_device(args.device),
                Path(args.out_dir) if args.out_dir else None, args.dropout, args.seeds,
                state_dir=Path(args.state_dir) if args.state_dir else None,
                resume=args.resume or args.resume_or_start, init_from=args.init_from, force=args.force,
                start_if_missing=args.resume_or_start, state_every=args.state_every, dry_run=args.dry_run,
                jobs=args.jobs, executor=args.executor, scheduler=args.scheduler, lr_given=args.lr is not None)
    return 0


def _cmd_check(args) -> int:
    """PASS / FAIL / SKIP per check and data family; exit 1 if any check fails."""
    from .checks import declared_families, run_checks
    from .errors import UserError
    from .registry import load_plugin, load_registry

    if args.target.endswith(".py"):
        entries = load_plugin(args.target)
        if not entries:
            raise UserError(f"{args.target}: defines no Solver subclass with a name")
    else:
        registry = load_registry()
        if args.target not in registry:
            raise UserError(f"unknown solver '{args.target}'; valid solvers: {', '.join(sorted(registry))} "
                            f"(or pass a plugin FILE.py)")
        entries = [registry[args.target]]
    failed = 0
    for entry in entries:
        if not entry.available:
            print(f"{entry.name}: FAIL import: {entry.error}")
            failed += 1
            continue
        print(f"{entry.name} ({entry.cls.group or 'ungrouped'}; families: {', '.join(declared_families(entry.cls))})")
        for family, check, status, message in run_checks(entry.cls):
            print(f"  {status:<4} {check} [{family}]" + (f": {message}" if message else ""))
            failed += status == "FAIL"
    print("all checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0


def _cmd_list_checkpoints() -> int:
    import json

    from .transformer import checkpoints

    print("checkpoint | where | preset | tokens | training distribution | prompts | training time | held-out ratio (worst k)")
    for where, directory in (("cache", checkpoints.user_dir()), ("package", checkpoints.shipped_dir())):
        for sidecar in checkpoints.sidecars(directory) if directory.is_dir() else []:
            meta = json.loads(sidecar.read_text())
            info = checkpoints.provenance(meta)
            t = meta.get("training", {})
            dist = ", ".join(f"{k}={t[k]}" for k in ("family", "m", "sigma", "d", "k_max", "n_train") if k in t)
            final = meta.get("final", {})
            held = (f"{final['mean_ratio']:.4f} ({final['worst_ratio']:.2f} at k = {final['worst_k']})"
                    if "mean_ratio" in final else f"NMSE {final.get('mean_nmse', float('nan')):.4g} (sigma = 0)")
            print(f"{sidecar.stem} | {where} | {meta.get('preset')} | {meta.get('config', {}).get('tokens', 'interleaved')} | "
                  f"{dist} | {info['samples_total']:,} | {info['seconds_total']:.0f} s | {held}")
    return 0


def _cmd_list(args) -> int:
    if args.checkpoints:
        return _cmd_list_checkpoints()
    from .registry import load_registry
    from .suites import builtin_suites, load_suite

    print("solvers:")
    for name, entry in load_registry(args.plugin).items():
        if not entry.available:
            print(f"  {name:<16} unavailable: {entry.error}  [{entry.source}]")
            continue
        cls = entry.cls
        kind = cls.group or "ungrouped"
        params = ", ".join(f"{k}={v!r}" for k, v in cls.param_defaults().items()) or "-"
        print(f"  {name:<16} {kind:<10} available  params: {params}  [{entry.source}]")
    from .families import families

    print("data families:")
    for name, family in families().items():
        fields = ", ".join(f"{k}={v!r}" for k, v in family.fields.items()) or "-"
        print(f"  {name:<16} oracle {family.oracle:<16} fields: {fields}  {family.description}")
    print("suites:")
    for name in sorted(builtin_suites()):
        suite = load_suite(name)
        print(f"  {name:<12} {len(suite.specs):>4} specs  sections: {', '.join(suite.sections)}  {suite.description}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": _cmd_run, "list": _cmd_list, "report": _cmd_report, "train": _cmd_train,
                "check": _cmd_check, "leaderboard": _cmd_leaderboard, "compare": _cmd_compare}[args.command](args)
    except UserError as exc:
        print(f"mrbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        what = ("the training state is saved: add --resume to continue" if args.command == "train"
                else "finished cells are stored, rerun to resume")
        print(f"mrbench: interrupted; {what}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
