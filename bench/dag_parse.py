"""What parsing each DAG file costs, against an empty DAG file; and `make demo`'s wall time.

    .venv/bin/python bench/dag_parse.py [--runs 7] [--no-bytecode] [--no-demo]

The DAG processor re-parses every file all the time, so a DAG file must cost about what an
empty one does (target: at most 1.3x). Each measurement is a fresh process that imports
``airflow.sdk`` (what every DAG file pays) and then executes the DAG file, as the processor's
parsing subprocess does; the median of ``--runs`` processes is printed:

- sdk:    importing airflow.sdk
- file:   executing the DAG file (its imports, the configuration, building its DAGs)
- total:  both, and its ratio to the empty DAG file's total (the target)

Python caches bytecode here in a temporary folder, as a deployed image has it compiled; a
first, unmeasured run per file fills that cache. ``--no-bytecode`` measures without it (as a
shell with PYTHONDONTWRITEBYTECODE=1 runs everything): every import is compiled again, so
import-heavy files look worse. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMPTY_DAG = '''\
from datetime import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def empty():
    @task
    def noop():
        pass

    noop()


empty()
'''
PARSE = """\
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
path = sys.argv[1]
exec(compile(open(path).read(), path, "exec"), {"__name__": "unusual_prefix_dag", "__file__": path})
t2 = time.perf_counter()
print(json.dumps({"sdk": t1 - t0, "file": t2 - t1}))
"""


def parse_once(path: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PARSE, str(path)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_times(path: Path, env: dict, runs: int) -> dict:
    parse_once(path, env)  # fills the bytecode cache (and the OS's file cache)
    samples = [parse_once(path, env) for _ in range(runs)]
    return {k: statistics.median(s[k] for s in samples) for k in ("sdk", "file")} | {
        "total": statistics.median(s["sdk"] + s["file"] for s in samples)
    }


def demo_seconds(work: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["make", "demo", f"DEMO_DIR={work / 'demo'}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--no-bytecode", action="store_true", help="compile every import again, in every process")
    p.add_argument("--no-demo", action="store_true", help="skip timing `make demo`")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="sa-bench-parse-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "SA_HYGIENE_CONFIG")}
        env |= {"AIRFLOW_HOME": str(work / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "GX_ANALYTICS_ENABLED": "false"}  # fmt: skip
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        empty = work / "empty_dag.py"
        empty.write_text(EMPTY_DAG)

        base = parse_times(empty, env, args.runs)
        mode = "no bytecode cache" if args.no_bytecode else "bytecode cached"
        print(f"DAG file parse, median of {args.runs} fresh processes ({mode}):")
        print(f"{'file':<28} {'sdk':>8} {'file':>9} {'total':>8} {'vs empty':>9}")
        for path in [empty, *sorted((ROOT / "dags").glob("*.py"))]:
            t = base if path == empty else parse_times(path, env, args.runs)
            print(f"{path.name:<28} {t['sdk']:>7.2f}s {t['file'] * 1000:>7.0f}ms {t['total']:>7.2f}s "
                  f"{t['total'] / base['total']:>8.2f}x")  # fmt: skip
        if not args.no_demo:
            print(f"\nmake demo (after install): {demo_seconds(work):.0f} s")


if __name__ == "__main__":
    main()
