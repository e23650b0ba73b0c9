"""Benchmark of the rule engine on demo orgs, beside its floor: the plain pyarrow read of the same tables.

    .venv/bin/python bench/evaluate.py [--scales 50 150 500] [--baseline-scales 50] [--data /tmp/sa-bench]

Every measurement runs in a fresh process, so that its peak memory is its own. A demo org
missing from --data is generated first and kept there (scale 500 takes a few minutes).
Figures, not a test: this machine is shared, so compare the ratios of one run.

- floor:     ``pyarrow.parquet.read_table(...).to_pandas()`` of every table ``load`` reads (all of the
             current snapshot, User and Opportunity of the previous one), whole files
- imports:   importing what ``evaluate`` needs, Great Expectations and its first context included
             (a fresh process: what every run pays before it reads a byte)
- load:      read_snapshot of the current snapshot and of what the previous one is needed for,
             into typed frames, quarantine included
- evaluate:  everything after loading: prepared frames, all workflows through GX, alerts
- run:       load + evaluate, i.e. ``python -m sa_hygiene evaluate`` after its imports
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
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

AS_OF = date(2026, 11, 24)
CURRENT = ["User", "Account", "Contact", "Opportunity", "OpportunityContactRole", "Task", "Event"]
PREVIOUS = ["User", "Opportunity"]


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frames_mb(snapshot) -> float:
    return sum(df.memory_usage(deep=True).sum() for df in snapshot.tables.values()) / 2**20


def floor(folder: Path) -> dict:
    """The plain read, in its own process: no typing, no quarantine, every column."""
    import pyarrow.parquet as pq

    base = rss_mb()
    paths = [folder / "current" / f"{o}.parquet" for o in CURRENT] + [folder / "previous" / f"{o}.parquet" for o in PREVIOUS]
    t0 = time.perf_counter()
    frames = [pq.read_table(p).to_pandas() for p in paths]
    took = time.perf_counter() - t0
    size = sum(f.memory_usage(deep=True).sum() for f in frames) / 2**20
    return {"floor_s": took, "floor_frames_mb": size, "floor_peak_mb": peak_mb() - base}


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


def measure(folder: Path, with_baseline: bool) -> dict:
    """Load and evaluate, after the imports (runs in the child process)."""
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.engine import gx, rules
    from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot

    gx.import_gx()
    gx.Validator()  # GX's first context pays one-off imports; not part of any run
    cfg = load_config()
    base = rss_mb()
    t0 = time.perf_counter()
    current = read_snapshot(folder / "current", cfg)
    previous = read_snapshot(folder / "previous", cfg, objects=PREVIOUS_OBJECTS)
    load = time.perf_counter() - t0
    loaded_mb = frames_mb(current) + frames_mb(previous)
    after_load_peak = peak_mb()
    t0 = time.perf_counter()
    result = rules.evaluate(current, previous, cfg, AS_OF)
    evaluate = time.perf_counter() - t0
    out = {
        "rows": {k: len(v) for k, v in current.tables.items()},
        "load_s": load,
        "evaluate_s": evaluate,
        "alerts": len(result.alerts),
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


def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", nargs="+", type=float, default=[50, 150, 500])
    ap.add_argument("--baseline-scales", nargs="*", type=float, default=[])
    ap.add_argument("--data", default="/tmp/sa-bench")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--floor", help=argparse.SUPPRESS)
    ap.add_argument("--imports", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child), args.baseline)))
        return
    if args.floor:
        print(json.dumps(floor(Path(args.floor))))
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
        r = {"scale": scale, **child("--floor", str(folder)), **child("--imports")}
        r.update(child("--child", str(folder), *(["--baseline"] if scale in args.baseline_scales else [])))
        rows.append(r)
        fl = r["floor_s"]
        run = r["load_s"] + r["evaluate_s"]
        opps, tasks = r["rows"]["Opportunity"], r["rows"]["Task"]
        line = (
            f"scale {scale:>4g}: {opps:>9,} opps {tasks:>11,} tasks | floor {fl:5.2f}s | imports {r['imports_s']:4.1f}s | "
            f"load {r['load_s']:6.2f}s ({r['load_s'] / fl:4.1f}x) | evaluate {r['evaluate_s']:6.2f}s ({r['evaluate_s'] / fl:4.1f}x) | "
            f"run {run:6.2f}s ({run / fl:4.1f}x floor) | frames {r['frames_mb']:6.0f} MB (floor's {r['floor_frames_mb']:6.0f} MB) | "
            f"peak {r['peak_mb']:6.0f} MB ({r['peak_mb'] / r['frames_mb']:.2f}x frames), abs {r['peak_abs_mb'] / 1024:5.2f} GB | "
            f"{r['alerts']:,} alerts"
        )
        if "naive_s" in r:
            line += f" | naive {r['naive_s']:7.1f}s ({r['naive_s'] / r['evaluate_s']:.1f}x evaluate)"
        print(line, flush=True)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        size = last["rows"]["Task"] / first["rows"]["Task"]
        print(f"growth from scale {first['scale']:g} to {last['scale']:g}: rows x{size:.1f}, floor x{last['floor_s'] / first['floor_s']:.1f}, "
              f"load x{last['load_s'] / first['load_s']:.1f}, evaluate x{last['evaluate_s'] / first['evaluate_s']:.1f}, "
              f"peak memory x{last['peak_mb'] / first['peak_mb']:.1f}")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
