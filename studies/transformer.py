"""Transformer studies, for the README's tables: throughput, time to quality, recipes side by
side. Run from the repository root:

    python -m studies.transformer cpu             # seconds to predict 1000 prompts, per preset
    python -m studies.transformer throughput      # tokens/s, both modes, one process (CUDA)
    python -m studies.transformer quality DIR...  # time to quality from `mrbench train` sidecars
    python -m studies.transformer compare A B     # two checkpoints on the same fresh prompts
    python -m studies.transformer curves DIR...   # learning curves from sidecars (--train: train them)
    python -m studies.transformer speed DIR       # old and new CPU recipe side by side

A time-to-quality run is `mrbench train` with a seconds budget and frequent evaluations, e.g.
`mrbench train --suite quick --where "m == 5 and sigma == 1" --preset paper --batch-size 1024
--lr 5e-4 --steps 1000000 --seconds 150 --eval-every 250 --out-dir DIR`: evaluations record the
training seconds after the first (compiling) step, without the evaluations themselves.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_transformer import CPU_MODES, CPU_SHAPES, MODES, TrainStep
from mrbench.transformer import checkpoints
from mrbench.transformer.config import preset_shape
from mrbench.transformer.model import PRESETS, Config, InContextRegressor, predict


def cpu_training_table(threads=(1, 2), batches=(64, 256), shapes=CPU_SHAPES, seconds: float = 3.0):
    """Training tokens/s and prompts/s of full prompts (61 pairs, d = 20) per shape, batch,
    mode and thread count: what the CPU recipe was chosen from. torch.compile (about 40 s to
    compile each) only for the cpu preset."""
    print("shape | parameters | threads | batch | mode | tokens/s | prompts/s | first 3 steps s")
    for n in threads:
        torch.set_num_threads(n)
        for shape in shapes:
            params = InContextRegressor(Config(d=20, max_pairs=61, **preset_shape(shape))).n_params()
            for batch in batches:
                for mode in CPU_MODES if shape == "cpu" else CPU_MODES[:2]:
                    t0 = time.perf_counter()
                    step = TrainStep(mode, shape, batch, "cpu")  # 3 warm-up steps (compilation)
                    first = time.perf_counter() - t0
                    rate = step.tokens_per_second(steps=3, seconds=seconds)
                    print(f"{shape} | {params:,} | {n} | {batch} | {mode} | {rate / 1e3:.1f}k | "
                          f"{rate / 121:.0f} | {first:.1f}", flush=True)


def cpu_table():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((1000, 61, 20), dtype=np.float32), rng.standard_normal((1000, 61))
    for preset in PRESETS:
        model = InContextRegressor(Config(d=20, max_pairs=61, **PRESETS[preset])).eval()
        predict(model, x[:8], y[:8])  # warm-up
        t0 = time.perf_counter()
        predict(model, x, y)
        print(f"{preset}: {time.perf_counter() - t0:.2f} s to predict 1000 prompts of 61 pairs "
              f"({model.n_params():,} parameters, {torch.get_num_threads()} threads)")


def throughput(preset: str, batch: int, steps: int, device: str):
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"{preset} preset, batch {batch}, {steps} timed steps after 3 warm-up steps, {name}"
          + ("" if device.startswith("cuda") else " (without CUDA both modes run fp32 eager: a smoke test)"))
    rates = {}
    for mode in MODES:
        rates[mode] = TrainStep(mode, preset, batch, device).tokens_per_second(steps)
        print(f"{mode:>14}: {rates[mode] / 1e6:8.3f} M tokens/s", flush=True)
    print(f"bf16 compiled / fp32 eager: {rates[MODES[0]] / rates[MODES[1]]:.2f}x")


def compare(paths: list[str], n: int = 4000, seed: int = 4243):
    """Two checkpoints of one training distribution on the same `n` fresh prompts: each one's
    mean NMSE ratio to the oracle over k = 1..k_max, and their difference with a 95% interval
    paired over prompts (each prompt's share of the per-k ratios, averaged over k)."""
    import dataclasses

    from mrbench.data import make_dataset, oracle_predictions
    from mrbench.families import make_spec
    from mrbench.leaderboard import paired_difference
    from mrbench.prompts import hide_query

    loaded = [checkpoints.load(Path(p), by_key=False) for p in paths]  # study runs, named by the user
    # older sidecars also list other families' fields at their defaults: compare the specs
    specs = [make_spec({k: v for k, v in meta["training"].items() if v is not None}) for _, meta in loaded]
    if specs[0].canonical() != specs[1].canonical():
        sys.exit("compare: the two checkpoints were trained on different distributions")
    ds = make_dataset(dataclasses.replace(specs[0], n_test=n, seed=seed))
    y = hide_query(ds.test.y)
    oracle = (oracle_predictions(ds) - ds.test.y)[:, 1:] ** 2
    shares = []
    for path, (model, _) in zip(paths, loaded):
        share = (predict(model, ds.test.x, y, "cpu") - ds.test.y)[:, 1:] ** 2 / oracle.mean(axis=0)
        ratio = share.mean(axis=0)
        print(f"{Path(path).stem}: mean ratio {ratio.mean():.4f}, worst {ratio.max():.3f} at k = {ratio.argmax() + 1}")
        shares.append(share.mean(axis=1))
    mean, se, q = paired_difference({seed: shares[0]}, {seed: shares[1]})  # the leaderboard's test
    print(f"difference (first - second): {mean:+.4f} [{mean - q * se:+.4f}, {mean + q * se:+.4f}] "
          f"(95%, paired over {n} prompts, seed {seed})")


def quality(dirs: list[str], thresholds=(1.05, 1.03, 1.02)):
    """For each checkpoint sidecar: the training seconds at which the mean NMSE ratio to the
    oracle (k = 1..k_max) first reached each threshold, and the worst k there and at the end."""
    print("checkpoint | m | sigma | preset | recipe | " + " | ".join(f"s to <= {t}" for t in thresholds)
          + " | final mean | final worst (k) | seconds | first step s")
    for sidecar in [p for d in dirs for p in checkpoints.sidecars(d)]:
        meta = json.loads(sidecar.read_text())
        r, evals, final = meta["recipe"], meta["evals"], meta["final"]
        if "mean_ratio" in final:
            reached = []
            for t in thresholds:
                hit = next((e for e in evals if e["mean_ratio"] <= t), None)
                reached.append("-" if hit is None else f"{hit['seconds']:.0f} (worst {hit['worst_ratio']:.3f})")
            end = f"{final['mean_ratio']:.4f} | {final['worst_ratio']:.3f} ({final['worst_k']})"
        else:  # sigma = 0: no ratio to the oracle (its NMSE is 0), the mean NMSE against OLS and argmin
            reached = ["n/a"] * len(thresholds)
            end = (f"NMSE {final['mean_nmse']:.4g} (OLS {final['ols_mean_nmse']:.4g}, "
                   f"argmin {final['argmin_mean_nmse']:.3g}) | n/a")
        recipe = (f"lr {r['lr']:g}, batch {r['batch_size']}, {r['position_weights']} weights"
                  + (", curriculum" if r["curriculum"] else ""))
        print(f"{sidecar.stem} | {meta['training']['m']} | {meta['training']['sigma']:g} | {meta['preset']} | "
              f"{recipe} | " + " | ".join(reached) + f" | {end} | {meta['wall_seconds']:.0f} | "
              f"{meta.get('first_step_seconds', float('nan')):.1f}")


# The CPU study behind the `cpu` preset and recipe: (label, m, preset, extra `mrbench train` options).
STUDY = [
    ("2x4x64", 5, "2x4x64", []), ("3x4x64", 5, "3x4x64", []), ("4x4x96", 5, "4x4x96", []),
    ("2x4x64", 20, "2x4x64", []), ("3x4x64", 20, "3x4x64", []), ("4x4x96", 20, "4x4x96", []),
    ("3x4x64 no curriculum", 5, "3x4x64", ["--no-curriculum"]),
    ("3x4x64 lr 2e-3 batch 256", 5, "3x4x64", ["--lr", "2e-3", "--batch-size", "256"]),
]


def curves_train(out: Path, seconds: float, parallel: int = 2):
    """Train the study's runs, `parallel` processes at a time with one thread each (the
    cores of the 2-core machine), every run on its own fresh-prompt distribution (quick.toml,
    sigma = 1), with the cpu recipe and a budget of `seconds` training seconds."""
    import os
    import subprocess

    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = []
    for i, (label, m, preset, extra) in enumerate(STUDY):
        run_dir = out / f"{i}"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "label").write_text(label)
        cmd = [sys.executable, "-m", "mrbench.cli", "train", "--where", f"m == {m} and sigma == 1", "--preset",
               preset, "--seconds", str(seconds), "--eval-seconds", str(seconds / 10), "--out-dir", str(run_dir),
               *extra]
        print(" ".join(cmd[2:]), flush=True)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(run_dir / "log", "w")))
        if len(procs) == parallel:
            [p.wait() for p in procs]
            procs = []
    [p.wait() for p in procs]


# The recipe speed study: the shipped recipe (interleaved tokens) against one token per pair,
# the same 3x4x64 stack and cpu recipe otherwise, side by side with one thread each; and
# variants of the pairs recipe (the curriculum's pace, the dimension curriculum) for m = 20.
SPEED = {"cpu": ("old: cpu preset (interleaved)", "cpu", []),
         "cpu-pairs": ("new: cpu-pairs preset (one token per pair)", "cpu-pairs", []),
         "cpu-pairs-share0.2": ("cpu-pairs, curriculum grown over a fifth of the budget", "cpu-pairs",
                                ["--curriculum-share", "0.2"]),
         "cpu-pairs-nodims": ("cpu-pairs, no dimension curriculum", "cpu-pairs", ["--no-curriculum-dims"])}


def speed(out: Path, m: int, seconds: float, runs=("cpu", "cpu-pairs"), eval_seconds: float = 60.0,
          thresholds=(1.20, 1.10, 1.05)):
    """Train the `runs` (SPEED's names) side by side (one thread each: the 2 cores), on fresh
    prompts at m, sigma = 1, for `seconds` training seconds each, then print the core-seconds
    (training seconds x 1 thread) at which each first reached each mean ratio."""
    import os
    import subprocess

    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = []
    for name in runs:
        label, preset, extra = SPEED[name]
        run_dir = out / f"m{m}-{name}"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "label").write_text(label)
        if not checkpoints.sidecars(run_dir):
            cmd = [sys.executable, "-m", "mrbench.cli", "train", "--where", f"m == {m} and sigma == 1", "--preset",
                   preset, "--seconds", str(seconds), "--eval-seconds", str(eval_seconds), "--out-dir", str(run_dir),
                   *extra]
            if len(procs) == 2 and procs[0].wait():  # two at a time: one per core, or the core-seconds inflate
                sys.exit("speed: a training run failed (see its log)")
            procs = procs[-1:] if len(procs) == 2 else procs
            print(" ".join(cmd[2:]), flush=True)
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(run_dir / "log", "w")))
    if any(p.wait() for p in procs):
        sys.exit("speed: a training run failed (see its log)")
    speed_table([out / f"m{m}-{name}" for name in runs], thresholds)


def speed_table(dirs: list[Path], thresholds=(1.20, 1.10, 1.05)):
    print("run | m | prompts/s | " + " | ".join(f"core-s to <= {t}" for t in thresholds)
          + " | final mean (worst k) | core-s")
    for d in dirs:
        for sidecar in checkpoints.sidecars(d):
            meta = json.loads(sidecar.read_text())
            label = (d / "label").read_text().strip() if (d / "label").exists() else meta["preset"]
            hits = [next((e for e in meta["evals"] if e["mean_ratio"] <= t), None) for t in thresholds]
            f = meta["final"]
            print(f"{label} | {meta['training']['m']} | {meta['samples'] / meta['wall_seconds']:.0f} | "
                  + " | ".join("-" if h is None else f"{h['seconds']:.0f}" for h in hits)
                  + f" | {f['mean_ratio']:.4f} ({f['worst_ratio']:.2f} at {f['worst_k']}) | {meta['wall_seconds']:.0f}")


def curves(dirs: list[str]):
    """Learning curves from `mrbench train` sidecars: mean (worst-k) NMSE ratio to the oracle
    against training seconds and prompts seen, at each evaluation."""
    for sidecar in [p for d in dirs for p in checkpoints.sidecars(d, recursive=True)]:
        meta = json.loads(sidecar.read_text())
        label = sidecar.parent / "label"
        label = label.read_text().strip() if label.exists() else meta["preset"]
        r = meta["recipe"]
        print(f"\n{label}: m = {meta['training']['m']}, sigma = {meta['training']['sigma']:g}, "
              f"{meta['config']['n_layer']}x{meta['config']['n_head']}x{meta['config']['n_embd']} "
              f"({InContextRegressor(Config(**meta['config'])).n_params():,} parameters), lr {r['lr']:g}, "
              f"batch {r['batch_size']}, {'curriculum' if r['curriculum'] else 'no curriculum'}, "
              f"{meta.get('device_name', meta['device'])}")
        print("  seconds | prompts | pairs | mean ratio | worst ratio (k)")
        for e in meta["evals"]:
            if "mean_ratio" in e:
                print(f"  {e['seconds']:7.0f} | {e.get('samples', 0):7.3g} | {e.get('pairs', '-'):>5} | "
                      f"{e['mean_ratio']:10.3f} | {e['worst_ratio']:.3f} ({e['worst_k']})")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m studies.transformer")
    sub = ap.add_subparsers(dest="what")
    cp = sub.add_parser("cpu")
    cp.add_argument("--training", action="store_true", help="also training throughput per shape, batch, mode, threads")
    cp.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (with --training)")
    cp.add_argument("--shapes", nargs="+", default=CPU_SHAPES, help="model shapes (with --training)")
    tp = sub.add_parser("throughput")
    tp.add_argument("--preset", default="paper", choices=list(PRESETS))
    tp.add_argument("--batch", type=int, default=1024)
    tp.add_argument("--steps", type=int, default=20)
    tp.add_argument("--device", default="cuda")
    co = sub.add_parser("compare")
    co.add_argument("checkpoints", nargs=2, help="two .safetensors files trained on one distribution")
    co.add_argument("--prompts", type=int, default=4000)
    co.add_argument("--seed", type=int, default=4243)
    qu = sub.add_parser("quality")
    qu.add_argument("dirs", nargs="+")
    cu = sub.add_parser("curves")
    cu.add_argument("dirs", nargs="+")
    cu.add_argument("--train", action="store_true", help="train the study's runs into the first DIR first")
    cu.add_argument("--seconds", type=float, default=300.0, help="training seconds per run (with --train)")
    cu.add_argument("--parallel", type=int, default=2, help="runs at a time, one thread each (with --train)")
    sp = sub.add_parser("speed", help="old and new CPU recipe side by side, core-seconds to quality")
    sp.add_argument("out", help="study directory (a run already there is read, not retrained)")
    sp.add_argument("--m", type=int, default=5)
    sp.add_argument("--seconds", type=float, default=1800.0)
    sp.add_argument("--runs", nargs="+", choices=list(SPEED), default=["cpu", "cpu-pairs"],
                    help="the recipes to train side by side, one thread each (default: the cpu and cpu-pairs presets)")
    args = ap.parse_args(argv)
    if args.what == "speed":
        speed(Path(args.out), args.m, args.seconds, args.runs)
    elif args.what == "throughput":
        throughput(args.preset, args.batch, args.steps, args.device)
    elif args.what == "compare":
        compare(args.checkpoints, args.prompts, args.seed)
    elif args.what == "quality":
        quality(args.dirs)
    elif args.what == "curves":
        if args.train:
            curves_train(Path(args.dirs[0]), args.seconds, args.parallel)
        curves(args.dirs)
    else:
        cpu_table()
        if args.training:
            cpu_training_table(threads=args.threads, shapes=args.shapes)


if __name__ == "__main__":
    sys.exit(main())
