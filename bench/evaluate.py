"""Benchmark of the rule engine on demo orgs, beside its floor: the plain pyarrow read of the same tables.

    .venv/bin/python bench/evaluate.py [--scales 50 150 500] [--baseline-scales 50] [--data /tmp/sa-bench]

Every measurement runs in a fresh process, so that its peak memory is its own. A demo org
missing from --data is generated first and kept there (scale 500 takes a few minutes), and
committed to a snapshot store beside it (``store/``, rebuilt every run: the commit is measured).
Figures, not a test: the floor is the most load-sensitive figure of all, so it is measured in
the same run, three times after one untimed warm-up read (the median is used), every line shows the load average at the start
of its scale, and no ratio is printed when the floor's three runs differ by more than 30%.

- floor:     ``pyarrow.parquet.read_table(...).to_pandas()`` of every table ``load`` reads (all of the
             current snapshot, User and Opportunity of the previous one), whole files
- commit:    committing both snapshots to a store typed (``commit_folder(..., cfg=...)``) against
             committing them raw: the commit step's added cost (reading, typing, writing ``_typed/``)
- committed: read_snapshot of the committed snapshots (their typed tables), against ``typed floor``,
             the plain read of those very files (and against their ``read_table`` alone, no pandas)
- imports:   importing what ``evaluate`` needs, Great Expectations and its first context included
             (a fresh process: what every run pays before it reads a byte)
- load:      read_snapshot of the demo org's raw folders (typed at read, as ``evaluate --snapshot``
             on a folder), into typed frames, quarantine included: what every read cost before
- evaluate:  everything after loading the committed snapshots: prepared frames, all workflows
             through GX (how many validations and expectations it ran), alerts
- run:       committed read + evaluate, i.e. ``python -m sa_hygiene evaluate`` on the store after
             its imports; three runs, each in its own process, as the floor: the median run's
             figures (committed read, evaluate) are printed, and the highest of their peaks
- peak:      peak RSS of the process (``getrusage`` maxrss) above its RSS after imports, against
             the loaded frames' size (``memory_usage(deep=True)``); ``abs`` is the whole process
- naive:     one GX validation per workflow over its full frame, the scope and `when` as GX
             row_conditions, COMPLETE result format with an id index column, the frame rebuilt
             for every workflow (no shared preparation)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

AS_OF = date(2026, 11, 24)
CURRENT = ["User", "Account", "Contact", "Opportunity", "OpportunityContactRole", "Task", "Event"]
PREVIOUS = ["User", "Opportunity"]
TAKEN = {"previous": datetime(2026, 11, 23, 4, tzinfo=UTC), "current": datetime(2026, 11, 24, 4, tzinfo=UTC)}
FLOOR_RUNS = 3
FLOOR_SPREAD = 0.30  # the floor's runs may differ by this much before its ratios mean nothing


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frames_mb(snapshot) -> float:
    return sum(df.memory_usage(deep=True).sum() for df in snapshot.tables.values()) / 2**20


def floor(folder: Path, typed: bool = False) -> dict:
    """The plain read, in its own process: no typing, no quarantine, every column; ``typed``: of
    the committed snapshots' typed tables (``folder`` is then the store)."""
    import pyarrow.parquet as pq

    base = rss_mb()
    if typed:
        from sa_hygiene.source.store import snapshot_name
        from sa_hygiene.source.typed import TYPED_DIR

        at = {k: folder / snapshot_name(v) / TYPED_DIR for k, v in TAKEN.items()}
    else:
        at = {k: folder / k for k in TAKEN}
    paths = [at["current"] / f"{o}.parquet" for o in CURRENT] + [at["previous"] / f"{o}.parquet" for o in PREVIOUS]
    t0 = time.perf_counter()
    tables = [pq.read_table(p) for p in paths]
    read = time.perf_counter() - t0
    frames = [t.to_pandas() for t in tables]
    took = time.perf_counter() - t0
    size = sum(f.memory_usage(deep=True).sum() for f in frames) / 2**20
    return {"floor_s": took, "floor_read_s": read, "floor_frames_mb": size, "floor_peak_mb": peak_mb() - base}


def imports() -> dict:
    """What a fresh ``evaluate`` process imports before it reads the snapshot."""
    t0 = time.perf_counter()
    from sa_hygiene.engine import gx

    gx.import_gx()
    gx.Validator()
    return {"imports_s": time.perf_counter() - t0}


def naive(current, previous, cfg) -> tuple[float, int]:
    """One GX validation per workflow on full frames, conditions inside GX, nothing shared."""
    from sa_hygiene.engine import prepare
    from sa_hygiene.engine.gx import build_expectation, import_gx

    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas("naive")
    w = prepare.RunWindow.of(AS_OF)
    params = {**cfg.params(), "as_of": w.as_of}

    def literal(match: re.Match) -> str:
        value = params[match.group(1)]
        return f'"{value.date().isoformat()}"' if hasattr(value, "date") else repr(value)

    started = time.perf_counter()
    unexpected = 0
    for wid, wf in cfg.enabled_workflows().items():
        frames, _ = prepare.prepare_frames(current, previous, cfg, w, only={wf.frame})
        if wf.frame not in frames:
            continue
        frame = frames[wf.frame].reset_index(drop=True)
        bd = source.add_dataframe_asset(wid).add_batch_definition_whole_dataframe("all")
        for e in wf.expect:
            condition = " and ".join(f"({c})" for c in (wf.scope, e.when) if c and c != "True")
            condition = re.sub(r"@(\w+)", literal, condition)
            data = frame
            if e.expectation == "each_in_set":
                data = prepare.exploded(frame[e.column]).to_frame(e.column)
                data["id"] = frame["id"].reindex(data.index).to_numpy()
                data = data.join(frame.drop(columns=[e.column, "id"]), how="left").reset_index(drop=True)
            elif e.expectation in ("match_regex", "min_length"):
                data = frame.fillna({e.column: ""})
            kw = {"row_condition": condition, "condition_parser": "pandas"} if condition else {}
            expectation = build_expectation(e, params, {"workflow": wid}, **kw)
            batch = bd.get_batch(batch_parameters={"dataframe": data})
            r = batch.validate(expectation, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]})
            unexpected += r.result.get("unexpected_count") or 0
    return time.perf_counter() - started, unexpected


def commit(folder: Path) -> dict:
    """Commit both snapshots to a fresh store raw, then to another typed: the commit's added cost."""
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.source.store import SnapshotStore

    cfg = load_config()
    took = {}
    for typed in (False, True):
        root = folder / ("store" if typed else "store-raw")
        shutil.rmtree(root, ignore_errors=True)
        store = SnapshotStore(str(root))
        t0 = time.perf_counter()
        for name, at in TAKEN.items():
            store.commit_folder(folder / name, at, "bench", cfg=cfg if typed else None)
        took[typed] = time.perf_counter() - t0
    # The snapshot DAG types while validating (read_snapshot of the staged folder, as before):
    # what it adds is writing the typed tables it already has.
    from sa_hygiene.source.snapshot import read_snapshot
    from sa_hygiene.source.store import snapshot_name
    from sa_hygiene.source.typed import write_typed

    write_s = 0.0
    for at in TAKEN.values():
        raw = folder / "store-raw" / snapshot_name(at)
        snap = read_snapshot(raw, cfg, typed=False)
        t0 = time.perf_counter()
        write_typed(str(raw), cfg, snap)
        write_s += time.perf_counter() - t0
    shutil.rmtree(folder / "store-raw")
    return {"commit_raw_s": took[False], "commit_typed_s": took[True], "commit_write_s": write_s}


def load_raw(folder: Path) -> dict:
    """The raw folders typed at read (the load before typing at commit), in its own process."""
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot

    cfg = load_config()
    base = rss_mb()
    t0 = time.perf_counter()
    read_snapshot(folder / "current", cfg)
    read_snapshot(folder / "previous", cfg, objects=PREVIOUS_OBJECTS)
    return {"load_s": time.perf_counter() - t0, "load_raw_peak_mb": peak_mb() - base}


def measure(folder: Path, with_baseline: bool) -> dict:
    """Read the committed snapshots and evaluate, after the imports (runs in the child process)."""
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.engine import gx, rules
    from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot
    from sa_hygiene.source.store import snapshot_name

    gx.import_gx()
    gx.Validator()  # GX's first context pays one-off imports; not part of any run
    cfg = load_config()
    base = rss_mb()
    store = folder / "store"
    t0 = time.perf_counter()
    current = read_snapshot(store / snapshot_name(TAKEN["current"]), cfg)
    previous = read_snapshot(store / snapshot_name(TAKEN["previous"]), cfg, objects=PREVIOUS_OBJECTS)
    load = time.perf_counter() - t0
    loaded_mb = frames_mb(current) + frames_mb(previous)
    after_load_peak = peak_mb()
    t0 = time.perf_counter()
    result = rules.evaluate(current, previous, cfg, AS_OF)
    evaluate = time.perf_counter() - t0
    out = {
        "rows": {k: len(v) for k, v in current.tables.items()},
        "committed_s": load,
        "evaluate_s": evaluate,
        "alerts": len(result.alerts),
        # GX's cost is mostly per validation and per expectation: how many this evaluation ran
        "validations": len(result.results),
        "expectations": sum(len(r.results) for r in result.results),
        "frames_mb": loaded_mb,
        "base_rss_mb": base,
        "load_peak_mb": after_load_peak - base,
        "peak_mb": peak_mb() - base,
        "peak_abs_mb": peak_mb(),
    }
    if with_baseline:
        del result
        out["naive_s"], out["naive_unexpected"] = naive(current, previous, cfg)
    return out


# Every measurement with the allocator the project's reads use (``snapshot._prefer_jemalloc``):
# the floor with pyarrow's default (mimalloc here) spread 36-92% over three runs on an idle
# machine (0.66-1.13 s at scale 50, page purging), jemalloc's 10-25%; and a floor and a run on
# two allocators would be a ratio of allocators. ``ARROW_DEFAULT_MEMORY_POOL`` overrides it.
POOL = {"ARROW_DEFAULT_MEMORY_POOL": os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")}


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True,
                         env={**os.environ, **POOL}).stdout  # fmt: skip
    return json.loads(out.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", nargs="+", type=float, default=[50, 150, 500])
    ap.add_argument("--baseline-scales", nargs="*", type=float, default=[])
    ap.add_argument("--data", default="/tmp/sa-bench")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--floor", help=argparse.SUPPRESS)
    ap.add_argument("--typed-floor", help=argparse.SUPPRESS)
    ap.add_argument("--commit", help=argparse.SUPPRESS)
    ap.add_argument("--load-raw", help=argparse.SUPPRESS)
    ap.add_argument("--imports", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child), args.baseline)))
        return
    if args.floor:
        print(json.dumps(floor(Path(args.floor))))
        return
    if args.typed_floor:
        print(json.dumps(floor(Path(args.typed_floor), typed=True)))
        return
    if args.commit:
        print(json.dumps(commit(Path(args.commit))))
        return
    if args.load_raw:
        print(json.dumps(load_raw(Path(args.load_raw))))
        return
    if args.imports:
        print(json.dumps(imports()))
        return

    rows = []
    for scale in args.scales:
        folder = Path(args.data) / f"scale{scale:g}"
        if not (folder / "current" / "Task.parquet").exists():
            print(f"generating the scale {scale:g} demo org in {folder} ...", flush=True)
            subprocess.run([sys.executable, "-m", "sa_hygiene", "demo-org", "--out", str(folder), "--as-of",
                            AS_OF.isoformat(), "--scale", f"{scale:g}"], check=True)  # fmt: skip
        load_avg = os.getloadavg()
        r = {"scale": scale, "load_avg": load_avg, **child("--imports"), **child("--commit", str(folder))}
        # One untimed read of each first: the commit just wrote the typed files and the raw ones may
        # be cold, and a floor read from the disk against a run read from the page cache (as every
        # measured step after it is) is no ratio at all (seen: 1.86 s, then 0.64 s and 0.63 s).
        child("--floor", str(folder)), child("--typed-floor", str(folder / "store"))
        floors = [child("--floor", str(folder)) for _ in range(FLOOR_RUNS)]
        typed = [child("--typed-floor", str(folder / "store")) for _ in range(FLOOR_RUNS)]
        typed_floors = [f["floor_s"] for f in typed]
        r.update(floors[0], floor_runs=[f["floor_s"] for f in floors], typed_floor_runs=typed_floors,
                 typed_read_runs=[f["floor_read_s"] for f in typed])  # fmt: skip
        r["floor_s"], r["typed_floor_s"] = statistics.median(r["floor_runs"]), statistics.median(typed_floors)
        r.update(child("--load-raw", str(folder)))
        # The run three times too, each in its own process: the median run's figures, the highest peak.
        runs = [child("--child", str(folder), *(["--baseline"] if scale in args.baseline_scales and k == 0 else []))
                for k in range(FLOOR_RUNS)]  # fmt: skip
        r["run_runs"] = [x["committed_s"] + x["evaluate_s"] for x in runs]
        middle = sorted(runs, key=lambda x: x["committed_s"] + x["evaluate_s"])[len(runs) // 2]
        r.update({**runs[0], **middle}, peak_mb=max(x["peak_mb"] for x in runs),
                 peak_abs_mb=max(x["peak_abs_mb"] for x in runs))  # fmt: skip
        rows.append(r)
        print(line_of(r), flush=True)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        size = last["rows"]["Task"] / first["rows"]["Task"]
        print(f"growth from scale {first['scale']:g} to {last['scale']:g}: rows x{size:.1f}, floor x{last['floor_s'] / first['floor_s']:.1f}, "
              f"committed read x{last['committed_s'] / first['committed_s']:.1f}, "
              f"evaluate x{last['evaluate_s'] / first['evaluate_s']:.1f}, peak memory x{last['peak_mb'] / first['peak_mb']:.1f}")  # fmt: skip
    print(json.dumps(rows))


def spread(runs: list[float]) -> float:
    return (max(runs) - min(runs)) / min(runs)


def ratio(value: float, runs: list[float], of: str = "floor") -> str:
    """``value`` over the median of ``runs``, or why there is none: a floor whose runs disagree
    by more than FLOOR_SPREAD was measured on a machine too busy for it to mean anything."""
    if spread(runs) > FLOOR_SPREAD:
        return f"no ratio to the {of}: its runs differ by {spread(runs):.0%}"
    return f"{value / statistics.median(runs):4.2f}x {of}"


def line_of(r: dict) -> str:
    """One scale's figures; every ratio beside the load average at the start of its measurements."""
    fl, tfl = r["floor_s"], r["typed_floor_s"]
    run = r["committed_s"] + r["evaluate_s"]
    opps, tasks = r["rows"]["Opportunity"], r["rows"]["Task"]
    la = "/".join(f"{v:.2f}" for v in r["load_avg"])
    runs = "/".join(f"{v:.2f}" for v in r["floor_runs"])
    typed_runs = "/".join(f"{v:.2f}" for v in r["typed_floor_runs"])
    line = (
        f"scale {r['scale']:>4g}: {opps:>9,} opps {tasks:>11,} tasks | load average {la} at start | "
        f"Arrow pool {POOL['ARROW_DEFAULT_MEMORY_POOL']} | "
        f"floor {fl:5.2f}s (median of {runs}) | typed floor {tfl:5.2f}s (median of {typed_runs}) | "
        f"imports {r['imports_s']:4.1f}s | "
        f"commit {r['commit_typed_s']:6.2f}s typed, {r['commit_raw_s']:6.2f}s raw "
        f"(+{r['commit_typed_s'] - r['commit_raw_s']:.2f}s; +{r['commit_write_s']:.2f}s writing after the DAG's validation) | "
        f"committed read {r['committed_s']:6.2f}s ({ratio(r['committed_s'], r['typed_floor_runs'], 'typed floor')}, "
        f"{ratio(r['committed_s'], r['typed_read_runs'], 'typed files read_table alone')}, "
        f"{ratio(r['committed_s'], r['floor_runs'])}) | "
        f"load at read {r['load_s']:6.2f}s ({ratio(r['load_s'], r['floor_runs'])}) | "
        f"evaluate {r['evaluate_s']:6.2f}s ({ratio(r['evaluate_s'], r['floor_runs'])}; "
        f"{r['validations']} GX validations of {r['expectations']} expectations) | "
        f"run {run:6.2f}s (median of {'/'.join(f'{v:.2f}' for v in r['run_runs'])}; {ratio(run, r['floor_runs'])}) | "
        f"frames {r['frames_mb']:6.0f} MB (floor's {r['floor_frames_mb']:6.0f} MB) | "
        f"peak {r['peak_mb']:6.0f} MB ({r['peak_mb'] / r['frames_mb']:.2f}x frames; the read's own {r['load_peak_mb']:6.0f} MB "
        f"committed, {r['load_raw_peak_mb']:6.0f} MB typed at read), "
        f"abs {r['peak_abs_mb'] / 1024:5.2f} GB | {r['alerts']:,} alerts"
    )
    if "naive_s" in r:
        line += f" | naive {r['naive_s']:7.1f}s ({r['naive_s'] / r['evaluate_s']:.1f}x evaluate)"
    return line


if __name__ == "__main__":
    main()
