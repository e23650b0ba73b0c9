"""Benchmark of the rule engine on demo orgs: load (the floor), evaluate, peak memory, naive baseline.

    .venv/bin/python bench/evaluate.py [--scales 50 150 500] [--baseline-scales 50 150] [--data /tmp/sa-bench]

Each scale runs in a fresh process so that peak memory is that scale's alone. A demo org
missing from --data is generated first (scale 500 takes a few minutes). Figures, not a test.

- load:      read_snapshot of the current snapshot and of what the previous one is needed for
             (User, Opportunity) into typed frames, quarantine included
- evaluate:  everything after loading: prepared frames, all workflows through GX, alerts
- peak:      peak RSS of the process above its RSS after imports, against the loaded frames' size
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


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frames_mb(snapshot) -> float:
    return sum(df.memory_usage(deep=True).sum() for df in snapshot.tables.values()) / 2**20


def naive(current, previous, cfg) -> tuple[float, int]:
    """One GX validation per workflow on full frames, conditions inside GX, nothing shared."""
    from sa_hygiene import rules

    gx = rules._gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas("naive")
    w = rules.RunWindow.of(AS_OF)
    params = {**cfg.params(), "as_of": w.as_of}

    def literal(match: re.Match) -> str:
        value = params[match.group(1)]
        return f'"{value.date().isoformat()}"' if hasattr(value, "date") else repr(value)

    started = time.perf_counter()
    unexpected = 0
    for wid, wf in cfg.enabled_workflows().items():
        frames, _ = rules.prepare_frames(current, previous, cfg, w, only={wf.frame})
        if wf.frame not in frames:
            continue
        frame = frames[wf.frame].reset_index(drop=True)
        bd = source.add_dataframe_asset(wid).add_batch_definition_whole_dataframe("all")
        for e in wf.expect:
            condition = " and ".join(f"({c})" for c in (wf.scope, e.when) if c and c != "True")
            condition = re.sub(r"@(\w+)", literal, condition)
            data = frame
            if e.expectation == "each_in_set":
                data = rules.exploded(frame[e.column]).to_frame(e.column)
                data["id"] = frame["id"].reindex(data.index).to_numpy()
                data = data.join(frame.drop(columns=[e.column, "id"]), how="left").reset_index(drop=True)
            elif e.expectation in ("match_regex", "min_length"):
                data = frame.fillna({e.column: ""})
            kw = {"row_condition": condition, "condition_parser": "pandas"} if condition else {}
            expectation = rules.build_expectation(e, params, {"workflow": wid}, **kw)
            batch = bd.get_batch(batch_parameters={"dataframe": data})
            r = batch.validate(expectation, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]})
            unexpected += r.result.get("unexpected_count") or 0
    return time.perf_counter() - started, unexpected


def measure(folder: Path, with_baseline: bool) -> dict:
    """Runs in the child process."""
    from sa_hygiene import rules
    from sa_hygiene.config import load_config
    from sa_hygiene.snapshot import PREVIOUS_OBJECTS, read_snapshot

    rules._gx()
    rules.Validator()  # GX's first context pays one-off imports; not part of any run
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
    }
    if with_baseline:
        del result
        out["naive_s"], out["naive_unexpected"] = naive(current, previous, cfg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", nargs="+", type=float, default=[50, 150, 500])
    ap.add_argument("--baseline-scales", nargs="*", type=float, default=[50, 150])
    ap.add_argument("--data", default="/tmp/sa-bench")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child), args.baseline)))
        return

    rows = []
    for scale in args.scales:
        folder = Path(args.data) / f"scale{scale:g}"
        if not (folder / "current" / "Task.parquet").exists():
            print(f"generating the scale {scale:g} demo org in {folder} ...", flush=True)
            subprocess.run([sys.executable, "-m", "sa_hygiene", "demo-org", "--out", str(folder), "--as-of",
                            AS_OF.isoformat(), "--scale", f"{scale:g}"], check=True)  # fmt: skip
        cmd = [sys.executable, __file__, "--child", str(folder)] + (["--baseline"] if scale in args.baseline_scales else [])
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        r["scale"] = scale
        rows.append(r)
        opps, tasks = r["rows"]["Opportunity"], r["rows"]["Task"]
        line = (
            f"scale {scale:>4g}: {opps:>9,} opps {tasks:>11,} tasks | load {r['load_s']:6.1f}s | "
            f"evaluate {r['evaluate_s']:6.1f}s ({r['evaluate_s'] / r['load_s']:.2f}x load) | "
            f"frames {r['frames_mb']:7.0f} MB, peak {r['peak_mb']:7.0f} MB ({r['peak_mb'] / r['frames_mb']:.2f}x) | "
            f"{r['alerts']:,} alerts"
        )
        if "naive_s" in r:
            line += f" | naive {r['naive_s']:7.1f}s ({r['naive_s'] / r['evaluate_s']:.1f}x evaluate)"
        print(line, flush=True)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        size = last["rows"]["Task"] / first["rows"]["Task"]
        print(f"growth from scale {first['scale']:g} to {last['scale']:g}: rows x{size:.1f}, "
              f"load x{last['load_s'] / first['load_s']:.1f}, evaluate x{last['evaluate_s'] / first['evaluate_s']:.1f}, "
              f"peak memory x{last['peak_mb'] / first['peak_mb']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
