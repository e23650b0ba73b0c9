"""``python -m sa_hygiene``: the commands that run without Airflow.

Each command imports what it needs when it runs, so ``--help`` is instant and
``evaluate`` never imports Airflow. Unusable input (a missing file or column, a bad
configuration, a malformed date) exits with status 2 and one clear message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, datetime
from pathlib import Path

EXIT_USAGE = 2
# `make demo`'s days: the second shows fixes, snoozes and escalations; more would add a minute each.
DEMO_DAYS = 2


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return n


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a YYYY-MM-DD date") from None


def _datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date-time") from None


class OutputError(OSError):
    """A file or folder the command must write cannot be written: unusable input, exit 2."""


def _open_out(path: str | None):
    if path in (None, "-"):
        return sys.stdout
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _outbox(path: str) -> str:
    """The outbox folder, made now: a file in its place is the user's to fix, before any delivery."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file, not a folder" if Path(path).is_file() else exc.strerror or exc
        raise OutputError(f"{path}: the outbox cannot be a folder: {reason}") from None
    return path


def write_jsonl(records, path: str | None) -> None:
    out = _open_out(path)
    try:
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.engine.rules import evaluate_snapshots

    if args.resolved and not args.state:
        print("error: --resolved needs --state (the alert state it reads episodes from)", file=sys.stderr)
        return EXIT_USAGE
    cfg = load_config(args.config)
    result = evaluate_snapshots(args.snapshot, args.previous, cfg, args.as_of, args.since, args.until,
                                changes=args.changes)  # fmt: skip
    alerts = result.alert_records()
    if args.state:
        from sa_hygiene.state.alerts import AlertState

        with AlertState(args.state, news=cfg.news_workflows) as state:
            recorded = state.record(args.as_of, alerts, scope=result.scope, quarantined=result.quarantined_keys())
        alerts = recorded.alerts
        if args.resolved:
            write_jsonl(recorded.resolved, args.resolved)
    write_jsonl(alerts, args.out)
    if args.quarantine:
        write_jsonl(result.quarantine_records(), args.quarantine)
    print(f"{len(result.alerts)} alerts, {len(result.quarantine)} quarantined rows", file=sys.stderr)
    return 0


def _one_line(exc: Exception) -> str:
    """An error as one line: a configuration's problems are listed on lines of their own."""
    head, *rest = str(exc).splitlines() or [""]
    return " ".join([head, "; ".join(line.strip() for line in rest)]).strip()


def cmd_backtest(args: argparse.Namespace) -> int:
    """CONTRACT.md § 2c. Every refusal is one line (exit 2), the workflow file's as the configuration's."""
    from sa_hygiene.contract.config import ConfigError, load_config, with_workflows
    from sa_hygiene.engine.backtest import BacktestError, draft_config, plan, run_backtest, stored_snapshots

    try:
        cfg = load_config(args.config)
        try:
            doc = yaml_file(args.workflow)
        except OSError as exc:
            raise ConfigError(f"{args.workflow}: cannot read the workflow file: {exc.strerror or exc}") from None
        cfg, ids = with_workflows(cfg, doc, args.workflow)
        days = plan(stored_snapshots(cfg, args.snapshots), args.days, args.until)
    except (ConfigError, BacktestError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    out = _open_out(args.out)
    try:
        for day in run_backtest(draft_config(cfg, ids), days):
            out.write(json.dumps(day.record(), ensure_ascii=False) + "\n")
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    skipped = ", ".join(d.isoformat() for d in days.skipped) or "none"
    print(f"{len(days.days)} days evaluated from {days.first.isoformat()} to {days.last.isoformat()} "
          f"({', '.join(ids)}); skipped, no snapshot: {skipped}", file=sys.stderr)  # fmt: skip
    return 0


def yaml_file(path: str):
    """A YAML document, its syntax errors as a ConfigError naming the file."""
    import yaml

    from sa_hygiene.contract.config import ConfigError

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_one_line(exc)}") from None


def cmd_snooze(args: argparse.Namespace) -> int:
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.state.alerts import AlertState

    cfg = load_config(args.config)
    if args.workflow not in cfg.workflows:
        print(f"error: --workflow: {args.workflow!r} is not a workflow of the configuration", file=sys.stderr)
        return EXIT_USAGE
    if args.workflow in cfg.news_workflows:
        print(f"error: --workflow: {args.workflow} is news, announced once: there is nothing to snooze", file=sys.stderr)
        return EXIT_USAGE
    if not args.reason.strip():
        print("error: --reason: say why, for whoever reads the report", file=sys.stderr)
        return EXIT_USAGE
    from datetime import date

    from sa_hygiene.delivery.blockkit import is_salesforce_id

    if not is_salesforce_id(args.record):  # what a digest would show as a link: an Id, nothing else
        print(f"error: --record: {args.record[:40]!r}{'…' if len(args.record) > 40 else ''} is not a Salesforce Id "
              "(15 or 18 letters and digits)", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if args.until <= date.today():
        print(f"error: --until: {args.until.isoformat()} is not after today: nothing would be snoozed", file=sys.stderr)
        return EXIT_USAGE
    with AlertState(args.state or cfg.state_url, news=cfg.news_workflows) as state:
        state.snooze(args.workflow, args.record, args.until, args.reason.strip(), args.by)
    print(f"{args.workflow} {args.record} snoozed until {args.until.isoformat()} by {args.by}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.state.alerts import AlertState
    from sa_hygiene.state.db import safe_url
    from sa_hygiene.state.ledger import Ledger

    cfg = load_config(args.config)
    from sa_hygiene.state.user_alerts import UserAlerts

    Ledger(cfg.slack.ledger_url).close()
    AlertState(cfg.state_url).close()
    UserAlerts(cfg.state_url).close()
    print(f"schemas current: ledger {safe_url(cfg.slack.ledger_url)}, alert state and user alerts {safe_url(cfg.state_url)}")
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    # Airflow (imported for its Slack hook) logs every step to standard output; this command
    # prints its own summary there, and warnings suffice unless the user asks for more.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.delivery.slack import DeliveryFailed
    from sa_hygiene.pipeline.digests import deliver_digests
    from sa_hygiene.pipeline.evaluation import EvaluationRun
    from sa_hygiene.pipeline.sending import open_sink
    from sa_hygiene.state.ledger import Ledger

    cfg = load_config(args.config)
    # Nothing is posted without the ledger: an unusable one is the first and only error.
    Ledger(args.ledger or cfg.slack.ledger_url).close()
    run_id = f"digest-{args.as_of.isoformat()}"
    to_slack = bool(args.slack_conn_id)  # --slack-conn-id or --outbox: one of them is required
    sink = open_sink(cfg, run_id, delivery="slack" if to_slack else "outbox", conn_id=args.slack_conn_id,
                     outbox=None if to_slack else _outbox(args.outbox))  # fmt: skip
    run = EvaluationRun(as_of=args.as_of, alerts=args.alerts, snapshot=args.snapshot, previous=args.previous)
    try:
        out = deliver_digests(cfg, run, run_id, sink=sink, ledger_url=args.ledger, with_quarantine=True)
    except DeliveryFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{out['messages']} digests: {out['sent']} sent, {out['already_sent']} already sent, "
          f"{out['elsewhere']} delivered by another run, {out['unknown_users']} users unknown to Slack")  # fmt: skip
    if "preview" in out:
        print(f"outbox: {sink.calls_path}\npreview: {out['preview']}")
    return 0


def cmd_slack_app(args: argparse.Namespace) -> int:
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    import logging

    from sa_hygiene.contract.config import load_config
    from sa_hygiene.web.slack_app.app import run_socket_mode
    from sa_hygiene.web.slack_app.backends import SlackAppError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_socket_mode(load_config(args.config))
    except SlackAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_demo_org(args: argparse.Namespace) -> int:
    from sa_hygiene.demo.org import write_demo_org

    started = time.perf_counter()
    meta = write_demo_org(args.out, args.as_of, scale=args.scale, seed=args.seed)
    took = time.perf_counter() - started
    rows = ", ".join(f"{k} {v:,}" for k, v in meta["rows"].items())
    print(f"demo org (scale {args.scale:g}, seed {args.seed}) written to {args.out} in {took:.1f}s: {rows}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sa_hygiene.demo.run import run_demo

    return run_demo(Path(args.dir), args.as_of, scale=args.scale, days=args.days, seed=args.seed)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sa_hygiene", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("evaluate", help="run every workflow on a snapshot and print the alerts as JSON Lines")
    e.add_argument("--snapshot", required=True, help="the current snapshot directory")
    e.add_argument("--previous", help="the snapshot before it (change workflows fire only with it)")
    e.add_argument("--as-of", required=True, type=_date, help="the evaluation date, YYYY-MM-DD")
    e.add_argument("--since", type=_datetime, help="start of the activity window (default: as-of minus 1 day, 00:00 UTC)")
    e.add_argument("--until", type=_datetime, help="end of the activity window, excluded (default: as-of, 00:00 UTC)")
    e.add_argument("--config", help="project configuration YAML (default: the built-in defaults)")
    e.add_argument("--out", help="alerts file, JSON Lines (default: standard output)")
    e.add_argument("--quarantine", help="quarantined rows file, JSON Lines")
    e.add_argument("--changes", help="a changes folder to apply to the snapshot first (rows changed since it was taken)")
    e.add_argument("--state", help="alert state database URL: adds first_seen and age_days, records episodes")
    e.add_argument("--resolved", help="with --state: write the episodes this date resolved here (JSON Lines)")
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("backtest", help="what draft workflows would have sent, day by day, over stored snapshots")
    b.add_argument("--workflow", required=True, help="YAML file of workflow entries in the configuration's format")
    b.add_argument("--snapshots", help="folder of snapshot folders named by date (default: the configured store)")
    b.add_argument("--days", type=_positive, default=30, help="days ending at --until (default 30)")
    b.add_argument("--until", type=_date, help="the last day, YYYY-MM-DD (default: the latest snapshot's date)")
    b.add_argument("--config", help="project configuration YAML (default: the built-in defaults)")
    b.add_argument("--out", help="one JSON line per evaluated day (default: standard output)")
    b.set_defaults(func=cmd_backtest)

    z = sub.add_parser("snooze", help="leave one item out of digests until a date")
    z.add_argument("--workflow", required=True)
    z.add_argument("--record", required=True, help="the record's Salesforce Id")
    z.add_argument("--until", required=True, type=_date, help="the first date it is shown again, YYYY-MM-DD")
    z.add_argument("--reason", required=True)
    z.add_argument("--by", default=os.environ.get("USER") or "command line", help="who snoozes it (default: $USER)")
    z.add_argument("--state", help="alert state database URL (default: the configuration's)")
    z.add_argument("--config")
    z.set_defaults(func=cmd_snooze)

    u = sub.add_parser("db-upgrade", help="create or upgrade the delivery ledger and alert state schemas")
    u.add_argument("--config")
    u.set_defaults(func=cmd_db_upgrade)

    m = sub.add_parser("digest", help="render the day's digests of an alerts file and deliver them once")
    m.add_argument("--snapshot", required=True, help="the snapshot the alerts were evaluated on")
    m.add_argument("--previous", help="the snapshot before it (shows what changed in change posts)")
    m.add_argument("--alerts", required=True, help="alerts file written by evaluate (JSON Lines)")
    m.add_argument("--as-of", required=True, type=_date)
    to = m.add_mutually_exclusive_group(required=True)
    to.add_argument("--outbox", help="write the Slack calls and an HTML preview into this folder")
    to.add_argument("--slack-conn-id", help="post to Slack through this Airflow connection")
    m.add_argument("--config")
    m.add_argument("--ledger", help="delivery ledger URL (default: the configuration's slack.ledger_url)")
    m.set_defaults(func=cmd_digest)

    s = sub.add_parser("slack-app", help="run the Slack app in Socket Mode (buttons on digests, the log-it form)")
    s.add_argument("--config")
    s.set_defaults(func=cmd_slack_app)

    g = sub.add_parser("demo-org", help="write a realistic demo org: a previous and a current snapshot")
    g.add_argument("--out", required=True)
    g.add_argument("--as-of", required=True, type=_date)
    g.add_argument("--scale", type=float, default=1.0, help="1 = about 2,000 opportunities and 20,000 tasks")
    g.add_argument("--seed", type=int, default=7)
    g.set_defaults(func=cmd_demo_org)

    sub.add_parser("extract", help="extract a Salesforce snapshot into the store: extract --conn-id ID --store URL")
    sub.add_parser("changes", help="pull the changes since the latest snapshot: changes --conn-id ID --store URL")

    d = sub.add_parser("demo", help="build the demo org and run the whole pipeline on it (make demo)")
    d.add_argument("--dir", default=".demo")
    d.add_argument("--as-of", type=_date, default=date(2026, 11, 24))
    d.add_argument("--scale", type=float, default=1.0)
    d.add_argument("--days", type=_positive, default=DEMO_DAYS,
                   help=f"simulated days from --as-of, the org evolving between them (default {DEMO_DAYS})")
    d.add_argument("--seed", type=int, default=7, help="the demo org's and the week's random seed")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["extract"]:
        # Its own parser: extract --conn-id ID --store URL [--config FILE] (exit 1 on a failed extraction).
        from sa_hygiene.source.extract import extract_cli

        return extract_cli(argv[1:])
    if argv[:1] == ["changes"]:
        from sa_hygiene.source.changes import changes_cli

        return changes_cli(argv[1:])
    args = parser().parse_args(argv)
    from sa_hygiene.contract.config import ConfigError
    from sa_hygiene.engine.gx import RuleError
    from sa_hygiene.engine.prepare import WindowError
    from sa_hygiene.pipeline.evaluation import AlertsError
    from sa_hygiene.source.snapshot import SnapshotError
    from sa_hygiene.state.db import DatabaseError

    try:
        return args.func(args)
    except (ConfigError, SnapshotError, DatabaseError, RuleError, WindowError, AlertsError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def exit_now(rc: int) -> None:
    """Leave without running C++ static destructors.

    Arrow's thread pools are sometimes still joinable when the interpreter tears down,
    and the process then aborts (``terminate called without an active exception``,
    exit -6) after its work is done: apache/arrow#34314. Everything of ours is flushed
    and closed first, so skipping the rest of the teardown loses nothing.
    """
    import logging

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(rc if isinstance(rc, int) else 1)


def run() -> None:
    """The console entry point (``sa-hygiene`` and ``python -m sa_hygiene``)."""
    try:
        rc = main()
    except SystemExit as exc:  # argparse's --help and usage errors
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    exit_now(rc)
