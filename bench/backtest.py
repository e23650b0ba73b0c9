"""Benchmark of the backtest and of user alerts in the evaluation (issue 27's figures).

    .venv/bin/python bench/backtest.py [--scales 5 50] [--days 30] [--alerts 200] [--runs 3] [--data /tmp/sa-bench-backtest]

- backtest: ``engine.backtest`` over ``--days`` daily snapshots of a demo org, typed at commit
  as the snapshot store holds them (a draft of three user-alert-like workflows, one of them a
  change workflow, so each day reads its previous snapshot too). Target: under 30 s at scale
  50, the time a Slack view update may take. The days alternate the demo org's two snapshots
  (symbolic links), so every day has changes; each day is still read as its own snapshot.
  Also printed: when the first day's result came (the Slack app's first progress update).
- evaluate: one evaluation of every YAML workflow on the current snapshot, with no user alerts
  and with ``--alerts`` of them (varied triggers, scopes and owners among the org's SAs),
  compiled and evaluated in the same pass, as the DAG step does. Target: at most 1.2x. Each
  run with alerts starts from nothing parsed, as the DAG step's own process does. Printed
  twice: the evaluation of snapshots already in memory, and the whole evaluate step (the two
  committed snapshots read, then evaluated), which is what a run of the DAG step costs.

Each figure is the median of ``--runs`` runs in this process after one unmeasured warm-up (GX's
first context, imports); the load average at the start is printed with each scale. Figures,
not a test: this machine is shared, so compare the ratios of one run. A demo org missing from
--data is generated (and typed) first and kept there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

AS_OF = date(2026, 11, 24)
DRAFT = {
    "workflows": {
        "bench-no-sa": {"title": "Stage 2+ without a Primary SA", "object": "Opportunity", "frame": "opportunities",
                        "scope": "is_open and rank >= 2", "expect": [{"expectation": "not_null", "column": "sa"}],
                        "recipient": {"region": "record"}, "slot": "regional_digest"},
        "bench-stage-3": {"title": "Moved to stage 3", "object": "Opportunity", "frame": "changes", "scope": "rank == 3",
                          "expect": [{"expectation": "in_set", "column": "prev_rank", "values": [3]}],
                          "recipient": {"dm": "sa"}, "slot": "sa_digest"},
        "bench-tasks": {"title": "Open tasks due", "object": "Task", "frame": "tasks",
                        "scope": "owner_is_sa and days_overdue >= 0",
                        "expect": [{"expectation": "in_set", "column": "is_closed", "values": [True]}],
                        "recipient": {"dm": "owner"}, "slot": "sa_digest"},
    }
}  # fmt: skip
TRIGGERS = [
    ("Opportunity", {"kind": "condition", "field": "iacv", "op": "more_than", "number": 100000}),
    ("Opportunity", {"kind": "condition", "field": "sa", "op": "blank"}),
    ("Opportunity", {"kind": "condition", "field": "te_status", "op": "equals", "values": ["Stalled"]}),
    ("Opportunity", {"kind": "condition", "field": "te_start", "op": "older_than_days", "number": 30}),
    ("Opportunity", {"kind": "changed", "field": "sa"}),
    ("Opportunity", {"kind": "stage_move", "to_value": 3}),
    ("Task", {"kind": "condition", "field": "is_closed", "op": "equals", "values": [False]}),
    ("Task", {"kind": "condition", "field": "sentiment", "op": "in", "values": ["Negative"]}),
]
SCOPES = ["mine", "my_region", "my_reports", "team", "my_accounts"]


def demo_org(data: Path, scale: float) -> Path:
    """The demo org at ``scale``, its snapshots typed as a commit to the store types them."""
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.demo.org import write_demo_org
    from sa_hygiene.source.typed import TYPED_DIR, write_typed

    folder = data / f"scale-{scale:g}"
    if not (folder / "current" / "Task.parquet").exists():
        t = time.perf_counter()
        write_demo_org(folder, AS_OF, scale=scale)
        print(f"  demo org at scale {scale:g} written in {time.perf_counter() - t:.0f} s", flush=True)
    for name in ("current", "previous"):
        if not (folder / name / TYPED_DIR).exists():
            write_typed(str(folder / name), load_config())
    return folder


def month(org: Path, days: int) -> Path:
    """``days`` + 1 date-named snapshot folders, alternating the org's two snapshots."""
    root = org / "month"
    root.mkdir(exist_ok=True)
    for k in range(days + 1):
        link = root / (AS_OF - timedelta(days=days - k)).isoformat()
        if not link.exists():
            link.symlink_to(org / ("current" if k % 2 else "previous"), target_is_directory=True)
    return root


def median(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def alternated(a, b, runs: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Median (wall, CPU) seconds of ``a`` and of ``b``, run in turns after a warm-up of each, so
    that a change in the machine's load falls on both alike."""
    a(), b()
    times: dict = {a: ([], []), b: ([], [])}
    for _ in range(runs):
        for fn in (a, b):
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[fn][0].append(time.perf_counter() - t)
            times[fn][1].append(time.process_time() - c)
    return tuple((statistics.median(w), statistics.median(c)) for w, c in times.values())  # type: ignore[return-value]


def user_alerts(snapshot, n: int) -> dict[str, dict]:
    users = snapshot.tables["User"]
    sas = users.loc[users["is_active"].astype(bool) & (users["role_type"] == "SA"), "id"].tolist()
    out = {}
    for k in range(n):
        obj, trigger = TRIGGERS[k % len(TRIGGERS)]
        scope = SCOPES[(k // len(TRIGGERS)) % len(SCOPES)]
        if obj == "Task" and scope == "my_accounts":
            scope = "mine"
        out[f"b{k:03d}"] = {"name": f"bench {k}", "owner": sas[k % len(sas)], "object": obj, "trigger": trigger,
                            "scope": scope, "delivery": "digest"}  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", type=float, nargs="+", default=[5, 50])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--alerts", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--data", default="/tmp/sa-bench-backtest")
    args = p.parse_args()
    for scale in args.scales:
        measure(Path(args.data), scale, args.days, args.alerts, args.runs)


def fresh_parse() -> None:
    """Forget every scope written and parsed: an evaluation's own process starts with none."""
    from sa_hygiene.contract.expressions import _id_list, expression_names, parse_scope
    from sa_hygiene.contract.user_alerts import _ids_of, _spelled
    from sa_hygiene.engine.columns import _plan, _value_set

    parse_scope.cache_clear()
    _id_list.cache_clear()
    _plan.cache_clear()
    _value_set.cache_clear()
    expression_names.cache_clear()
    _ids_of.cache_clear()
    _spelled.cache_clear()


def measure(data: Path, scale: float, n_days: int, n_alerts: int, runs: int) -> None:
    from sa_hygiene.contract.config import load_config, with_workflows
    from sa_hygiene.engine.backtest import draft_config, plan, run_backtest, stored_snapshots
    from sa_hygiene.engine.rules import evaluate
    from sa_hygiene.engine.user_alerts import evaluate_snapshot_with_user_alerts, with_user_alerts
    from sa_hygiene.source.snapshot import PREVIOUS_OBJECTS, read_snapshot

    cfg = load_config()
    org = demo_org(data, scale)
    la = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"scale {scale:g}: load average {la} at start", flush=True)
    draft, ids = with_workflows(cfg, DRAFT, "bench draft")
    days = plan(stored_snapshots(cfg, month(org, n_days)), n_days)
    first: list[float] = []
    cpu: list[float] = []

    def backtest() -> int:
        t, c = time.perf_counter(), time.process_time()
        lines = 0
        for n, _ in enumerate(run_backtest(draft_config(draft, ids), days)):
            if n == 0:
                first.append(time.perf_counter() - t)
            lines += 1
        cpu.append(time.process_time() - c)
        return lines

    took = median(backtest, runs)
    print(f"scale {scale:g}: backtest of {len(days.days)} days: {took:.1f} s ({took / len(days.days):.2f} s a day, "
          f"first day after {statistics.median(first[1:]):.1f} s, CPU time {statistics.median(cpu[1:]):.1f} s; "
          "target < 30 s)", flush=True)  # fmt: skip

    current = read_snapshot(org / "current", cfg)
    previous = read_snapshot(org / "previous", cfg, objects=PREVIOUS_OBJECTS)
    stored = user_alerts(current, n_alerts)
    _, broken = with_user_alerts(cfg, stored, current)
    assert not broken, broken

    def with_alerts():  # compiled per run and evaluated in the same pass, as the DAG step does
        fresh_parse()
        return evaluate_snapshot_with_user_alerts(current, previous, cfg, AS_OF, stored)[0]

    (plain, plain_cpu), (mixed, mixed_cpu) = alternated(lambda: evaluate(current, previous, cfg, AS_OF), with_alerts, runs)
    fired = with_alerts().alerts["workflow"].str.startswith("ua-").sum()
    print(f"scale {scale:g}: evaluate, 0 user alerts: {plain:.2f} s; {n_alerts} user alerts: {mixed:.2f} s "
          f"({mixed / plain:.2f}x, target <= 1.2x; CPU time {plain_cpu:.2f} s and {mixed_cpu:.2f} s, "
          f"{mixed_cpu / plain_cpu:.2f}x; {fired} user-alert lines)", flush=True)  # fmt: skip

    def read():
        return read_snapshot(org / "current", cfg), read_snapshot(org / "previous", cfg, objects=PREVIOUS_OBJECTS)

    def step_plain():
        return evaluate(*read(), cfg, AS_OF)

    def step_alerts():
        fresh_parse()
        return evaluate_snapshot_with_user_alerts(*read(), cfg, AS_OF, stored)[0]

    (plain, plain_cpu), (mixed, mixed_cpu) = alternated(step_plain, step_alerts, runs)
    print(f"scale {scale:g}: the evaluate step (committed snapshots read, then evaluated), 0 user alerts: {plain:.2f} s; "
          f"{n_alerts} user alerts: {mixed:.2f} s ({mixed / plain:.2f}x; CPU time {plain_cpu:.2f} s and "
          f"{mixed_cpu:.2f} s, {mixed_cpu / plain_cpu:.2f}x)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
