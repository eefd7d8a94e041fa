"""Mutation testing of the retrieval and inference modules with cosmic-ray, on a bounded budget: do the fast tests
notice when the code is changed?

Each mutant is one single-point change — a comparison flipped or moved off its boundary, a constant off by one, a
condition negated, True/False swapped, and/or swapped, a loop that never runs, an arithmetic operator inverted, an
exception type replaced — applied to a *copy* of the working tree (other work in the checkout is never touched),
then the module's fast tests run against it (``-x``, stub backend, no real model or editor). A mutant the tests
fail on is killed; one they pass on survived. The score is killed / (killed + survived); timeouts count as killed.

Run: ``python bench/mutation.py --sample 12`` (all modules, 12 seeded mutants each: 64 minutes of wall time
on a shared, loaded 2-core machine), or ``python bench/mutation.py --module pool --sample 40``; ``--merge``
keeps the other modules' results in the results file, ``--out mutation-after`` re-measures into a second file, and
``--summary`` writes bench/results/mutation.md from mutation.json (first run) and mutation-after.json (re-measured
modules). Needs ``pip install cosmic-ray==8.7.0``. The JSON files hold every survivor with its diff.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results"
PY = sys.executable

# module -> (source file, pytest arguments: the fast tests that exercise it, most direct first; pytest stops at the
# first failure, so a killed mutant costs little and a survivor costs the whole selection)
FAST_ENGRAM = ["tests/retrieval/test_engram.py", "-k", "not incremental and not thousands"]
MODULES = {
    "vsa": ("retrieval/vsa.py", ["tests/retrieval/test_vsa.py", *FAST_ENGRAM]),
    "encoder": ("retrieval/encoder.py", ["tests/retrieval/test_encoder.py", *FAST_ENGRAM]),
    "chunking": ("retrieval/chunking.py", ["tests/retrieval/test_chunking.py", *FAST_ENGRAM]),
    "store": ("retrieval/store.py", ["tests/retrieval/test_store.py"]),
    "engram": ("retrieval/engram.py", [*FAST_ENGRAM[:1], "tests/retrieval/test_store.py", *FAST_ENGRAM[1:]]),
    "ranking": ("retrieval/ranking.py", ["tests/retrieval/test_ranking.py", *FAST_ENGRAM]),
    "chunk_table": ("retrieval/chunk_table.py", [*FAST_ENGRAM[:1], "tests/retrieval/test_store.py",
                                                 *FAST_ENGRAM[1:]]),
    "protocol": ("inference/protocol.py", ["tests/inference/test_protocol.py", "tests/inference/test_worker.py"]),
    "pool": ("inference/pool.py", ["tests/inference/test_pool.py"]),
    "prompts": ("inference/prompts.py", ["tests/inference/test_prompts.py", "tests/inference/test_worker.py"]),
}
TIMEOUT = {"pool": 240.0}  # seconds per mutant (the default is --timeout); longer counts as killed

# The operators that make the single-point changes above (cosmic-ray's full set adds ~10 arithmetic and ~7
# comparison variants per site, most of them absurd, which would multiply the budget without telling us more).
KEEP = {
    "core/NumberReplacer", "core/AddNot", "core/ReplaceTrueWithFalse", "core/ReplaceFalseWithTrue",
    "core/ReplaceAndWithOr", "core/ReplaceOrWithAnd", "core/ReplaceBreakWithContinue",
    "core/ReplaceContinueWithBreak", "core/ZeroIterationForLoop", "core/ReplaceUnaryOperator_Delete_Not",
    "core/ExceptionReplacer",
    *(f"core/ReplaceComparisonOperator_{a}_{b}" for a, b in [
        ("Eq", "NotEq"), ("NotEq", "Eq"), ("Lt", "LtE"), ("Lt", "GtE"), ("LtE", "Lt"), ("LtE", "Gt"),
        ("Gt", "GtE"), ("Gt", "LtE"), ("GtE", "Gt"), ("GtE", "Lt"), ("Is", "IsNot"), ("IsNot", "Is"),
        ("In", "NotIn"), ("NotIn", "In")]),
    *(f"core/ReplaceBinaryOperator_{a}_{b}" for a, b in [
        ("Add", "Sub"), ("Sub", "Add"), ("Mul", "Div"), ("Div", "Mul"), ("FloorDiv", "Mul"), ("LShift", "RShift"),
        ("RShift", "LShift")]),
}


def copy_tree(work: Path) -> Path:
    """A copy of the working tree, and an import root mapping ``engram_ls.*`` onto it (ahead of the editable
    install, so tests and the worker processes they spawn import the mutated copy)."""
    tree = work / "tree"
    tree.mkdir()
    for part in ("inference", "retrieval", "server", "tests", "pyproject.toml"):  # what the fast tests need
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, tree / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tree / part)
    shim = work / "import" / "engram_ls"
    shim.mkdir(parents=True)
    for package in ("inference", "retrieval", "server"):
        (shim / package).symlink_to(tree / package)
    return tree


def run_module(name: str, work: Path, tree: Path, sample: int | None, seed: int, timeout: float) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    module, args = MODULES[name]
    args = [a for a in args if not a.startswith("tests/") or (tree / a).exists()]
    tests = [a for a in args if a.startswith("tests/")]
    config, session = work / f"{name}.toml", work / f"{name}.sqlite"
    command = shlex.join([PY, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                          "-m", "not model and not editor", *args])
    timeout = TIMEOUT.get(name, timeout)
    config.write_text(f'[cosmic-ray]\nmodule-path = "{module}"\ntimeout = {timeout}\nexcluded-modules = []\n'
                      f'test-command = {json.dumps(command)}\n[cosmic-ray.distributor]\nname = "local"\n')
    env = dict(os.environ, PYTHONPATH=f"{work / 'import'}{os.pathsep}{tree}", PYTHONDONTWRITEBYTECODE="1")
    subprocess.run([PY, "-m", "cosmic_ray.cli", "init", str(config), str(session)], cwd=tree, env=env, check=True)
    with use_db(str(session), WorkDB.Mode.open) as db:
        items = sorted(db.pending_work_items, key=lambda i: (i.mutations[0].operator_name, i.mutations[0].occurrence))
        kept = [i for i in items if i.mutations[0].operator_name in KEEP]
        chosen = kept if sample is None or len(kept) <= sample else random.Random(seed).sample(kept, sample)
        chosen_ids = {i.job_id for i in chosen}
        for item in items:
            if item.job_id not in chosen_ids:
                db.set_result(item.job_id, WorkResult(output="not in this run's sample",
                                                      worker_outcome=WorkerOutcome.SKIPPED))
    start = time.monotonic()
    subprocess.run([PY, "-m", "cosmic_ray.cli", "exec", str(config), str(session)], cwd=tree, env=env, check=True)
    seconds = time.monotonic() - start
    dump = subprocess.run([PY, "-m", "cosmic_ray.cli", "dump", str(session)], cwd=tree, env=env, check=True,
                          capture_output=True, text=True).stdout
    killed, survivors, errors = 0, [], []
    for line in dump.splitlines():
        item, result = json.loads(line)
        if result is None or result["worker_outcome"] == "skipped":
            continue
        m = item["mutations"][0]
        where = {"operator": m["operator_name"], "line": m["start_pos"][0], "function": m["definition_name"]}
        if result["worker_outcome"] == "normal" and result["test_outcome"] == "survived":
            survivors.append(where | {"diff": result.get("diff", "")})
        elif result["worker_outcome"] in ("normal", "abnormal"):  # killed, incompetent, or timed out
            killed += 1
        else:
            errors.append(where | {"outcome": result["worker_outcome"], "output": (result.get("output") or "")[-500:]})
    tested = killed + len(survivors)
    return {"module": module, "tests": tests, "pytest_args": args, "mutants_total": len(items), "mutants_kept": len(kept),
            "tested": tested, "killed": killed, "survived": len(survivors), "errors": len(errors),
            "score": round(killed / tested, 3) if tested else None, "seconds": round(seconds, 1),
            "survivors": sorted(survivors, key=lambda s: s["line"]), "error_items": errors}


def summary(before: Path, after: Path, out: Path) -> None:
    """One Markdown table: each module's score in the first run and, where it was re-measured after new tests
    (the same seeded mutants), its score then; the survivors that are left."""
    first = json.loads(before.read_text())["modules"]
    second = json.loads(after.read_text())["modules"] if after.exists() else {}
    rows = ["| module | mutants kept (of all) | first run: killed / tested | score | after new tests: killed / tested "
            "| score |", "|---|---|---|---|---|---|"]
    totals = [0, 0, 0, 0]
    for name, r in first.items():
        a = second.get(name, r)
        totals = [totals[0] + r["killed"], totals[1] + r["tested"], totals[2] + a["killed"], totals[3] + a["tested"]]
        rows.append(f"| {r['module']} | {r['mutants_kept']} of {r['mutants_total']} | {r['killed']} / {r['tested']} | "
                    f"{r['score']:.0%} | {a['killed']} / {a['tested']}{'' if name in second else ' (not re-run)'} | "
                    f"{a['score']:.0%} |")
    rows.append(f"| **all** | | {totals[0]} / {totals[1]} | {totals[0] / totals[1]:.0%} | {totals[2]} / {totals[3]} | "
                f"{totals[2] / totals[3]:.0%} |")
    rows += ["", "Survivors left (module:line, function, operator; every diff is in the JSON files):", ""]
    for name, r in first.items():
        for sv in second.get(name, r)["survivors"]:
            diff = [ln[1:].strip() for ln in sv.get("diff", "").splitlines() if ln.startswith("+") and
                    not ln.startswith("+++")]
            rows.append(f"- {r['module']}:{sv['line']} `{sv['function']}` {sv['operator'].removeprefix('core/')}: "
                        f"`{' '.join(diff)[:110]}`")
    out.write_text("\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--module", action="append", choices=sorted(MODULES), help="default: all")
    p.add_argument("--sample", type=int, default=None, help="at most this many mutants per module (seeded)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant; longer counts as killed")
    p.add_argument("--out", default="mutation", help="results file stem in bench/results/")
    p.add_argument("--merge", action="store_true", help="keep the other modules' results already in the file")
    p.add_argument("--summary", action="store_true", help="only write mutation.md from mutation.json and "
                   "mutation-after.json (the re-measured modules)")
    args = p.parse_args(argv)
    if args.summary:
        summary(OUT / "mutation.json", OUT / "mutation-after.json", OUT / "mutation.md")
        print((OUT / "mutation.md").read_text())
        return 0
    work = Path(tempfile.mkdtemp(prefix="engram-mutation-"))
    try:
        tree = copy_tree(work)
        results = {}
        for name in args.module or sorted(MODULES):
            results[name] = run_module(name, work, tree, args.sample, args.seed, args.timeout)
            r = results[name]
            print(f"{name}: {r['killed']}/{r['tested']} killed = {r['score']} ({r['seconds']} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    for r in results.values():
        r.update(commit=commit, sample=args.sample, seed=args.seed)
    previous = OUT / f"{args.out}.json"
    if args.merge and previous.exists():
        results = json.loads(previous.read_text())["modules"] | results
    results = {name: results[name] for name in MODULES if name in results}
    report = {"tool": "cosmic-ray 8.7.0", "commit": commit, "sample": args.sample, "seed": args.seed,
              "operators": sorted(KEEP), "modules": results}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = ["| module | mutants (kept of all) | tested (seeded sample) | killed | survived | score | commit |",
            "|---|---|---|---|---|---|---|"]
    rows += [f"| {r['module']} | {r['mutants_kept']} of {r['mutants_total']} | {r['tested']} | {r['killed']} | "
             f"{r['survived']} | {r['score']:.0%} | {r.get('commit', '')} |"
             for r in results.values() if r["score"] is not None]
    killed, tested = sum(r["killed"] for r in results.values()), sum(r["tested"] for r in results.values())
    rows += [f"| **all** | | {tested} | {killed} | {tested - killed} | {killed / max(1, tested):.0%} | |", "",
             "Survivors (one line each; diffs in mutation.json):", ""]
    rows += [f"- {r['module']}:{s['line']} `{s['function']}` {s['operator'].removeprefix('core/')}"
             for r in results.values() for s in r["survivors"]]
    (OUT / f"{args.out}.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
