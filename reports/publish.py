"""Rebuild the published reference reports: a complete run of each built-in suite on this machine
with everything that runs here, its HTML report, its claims scorecard, and an index in
reports/README.md (machine, date, git commit, wall time). It refuses a dirty checkout: the
commit it records must be the code that ran. Rerun it when solvers change:

    python reports/publish.py                      # quick, pathak2023, jin2024, subgroups
    python reports/publish.py --suites jin2024     # one of them (the index keeps the others' rows)
    python reports/publish.py --reuse              # keep the stored cells this code would compute alike

Each suite's results go to reports/SUITE/results, emptied first so that the run is complete and
fresh; with --reuse, the stored cells whose keys this code gives again are kept (a cell's key
hashes the code its numbers depend on, so a kept cell is what this commit would compute; each
row keeps the commit that computed it) and only the others run. The report and scorecard are
always rebuilt by this commit.

Raw predictions are removed after the report is built (they are large; the report
keeps what it drew from them); the Parquet cells, per-prompt scores and run records stay, so
`mrbench report reports/SUITE/results` rebuilds the leaderboards and the scorecard.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
INDEX = HERE / "index.json"


def publish(suite: str, commit: str, reuse: bool = False) -> dict:
    """One suite, run by `commit`: the checkout's commit taken once before anything is written
    (an earlier suite's new results would make it dirty)."""
    import mrbench
    from mrbench.claims import scorecard_text
    from mrbench.report import build, write_html
    from mrbench.store import Store, load_results

    out = HERE / suite / "results"
    stored = set() if not reuse or not out.is_dir() else set(load_results(out)["cell_key"])
    if not reuse:
        shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    frame = mrbench.run(suite=suite, out=out, device="cpu", progress=False, report=False)
    wall = time.perf_counter() - t0
    keys = set(frame["cell_key"])
    for stale in set(stored) - keys:  # cells of older code: not this commit's, not published
        Store(out).path(stale).unlink(missing_ok=True)
        (out / "_prompts" / f"{stale}.npy").unlink(missing_ok=True)
    reused = int((frame.drop_duplicates("cell_key")["git_commit"] != commit).sum())
    context, figures = build(out)
    html = write_html(context, figures, HERE / f"{suite}.html")
    verdicts = context["scorecard"]
    (HERE / f"{suite}-claims.txt").write_text(scorecard_text(verdicts) + "\n" if verdicts else "no claims\n")
    shutil.rmtree(out / "_predictions", ignore_errors=True)
    cells = frame.drop_duplicates("cell_key")["status"].value_counts().to_dict()
    return {"suite": suite, "report": html.name, "claims": f"{suite}-claims.txt", "wall_seconds": round(wall, 1),
            "cells": cells, "reused": reused, "git_commit": commit, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "verdicts": {v.claim.name: v.verdict for v in verdicts}}


def write_index(entries: dict) -> None:
    INDEX.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    lines = ["# Published reference reports", "",
             "Complete runs of the built-in suites on a CPU-only machine, each with everything that runs there",
             "(rows that need a GPU, such as the paper-size transformer, are skipped and say so). Rebuilt by",
             "`python reports/publish.py`; `mrbench report reports/SUITE/results --claims` rebuilds a report and its",
             "scorecard from the stored results (raw predictions are not kept).", "",
             "| suite | report | claims | cells | wall time | machine | date | git commit |", "|---|---|---|---|---|---|---|---|"]
    for e in entries.values():
        cells = ", ".join(f"{n} {s}" for s, n in sorted(e["cells"].items()))
        if e.get("reused"):
            cells += f" ({e['reused']} kept from an earlier run of the same code)"
        lines.append(f"| {e['suite']} | [{e['report']}]({e['report']}) | [{e['claims']}]({e['claims']}) | {cells} | "
                     f"{e['wall_seconds']:.0f} s | {e['machine']} | {e['date']} | `{e['git_commit']}` |")
    (HERE / "README.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default="quick,pathak2023,jin2024,subgroups")
    ap.add_argument("--reuse", action="store_true", help="keep the stored cells this code computes alike")
    args = ap.parse_args(argv)
    from mrbench.provenance import git_commit

    commit = git_commit()
    if commit.endswith("+dirty") or commit == "unknown":
        # a published report is evidence of a commit: it must be one that exists as it ran
        print(f"publish: the checkout is {'not a git commit' if commit == 'unknown' else 'dirty'} ({commit}); "
              "commit first, then publish", file=sys.stderr)
        return 2
    os.environ["MRBENCH_GIT_COMMIT"] = commit  # the rows of every suite: this clean commit
    entries = json.loads(INDEX.read_text()) if INDEX.exists() else {}
    for suite in args.suites.split(","):
        print(f"publishing {suite} ...", flush=True)
        entries[suite] = publish(suite, commit, args.reuse)
        print(f"  {entries[suite]['wall_seconds']} s, cells {entries[suite]['cells']}", flush=True)
        write_index(entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
