"""docker-compose.yaml run as containers, the way the README tells a platform engineer to
(`make compose-test`; deploy/compose-test.sh first makes sure there is a Docker engine, Compose
and the base images).

In a copy of the working tree (the files git would commit, so that a user's own .env, logs/ and
config/ are never touched), under the Compose project name ``sa-hygiene-compose-test``:

1. the README's steps: ``cp .env.example .env`` with the blanks filled in as .env.example says
   (a Fernet key, two ``token_urlsafe(64)`` keys, the admin's password; no connections),
   ``mkdir -p config``, ``docker compose build``, ``docker compose up airflow-init``,
   ``docker compose up -d --wait``;
2. every service running and healthy (slack-app, profile socket-mode, not started), airflow-init
   exited 0, ./config still the user's;
3. through the REST API (a token of the SimpleAuthManager): the DAGs parsed with no import error;
   the report page answering 401 without a login and "No hygiene report yet" (404) before a
   report; the Slack endpoint answering 503 while Slack is not configured;
4. a demo org (the test's only addition to .env: ``SA_HYGIENE_SOURCE=folder``) written to the
   data volume, ``sa_snapshot`` triggered for 2026-11-24, then ``sa_report`` (triggered by the
   snapshot's asset) and ``sa_regional_digest_east_sa`` must succeed, every task on the Celery
   worker, with the digest in the outbox and the report page serving the report;
5. ``docker compose down -v``, always.

Standard library only: it runs with the machine's python3, before any virtualenv exists.
Prints one line per check and closes with ``compose-test: N passed, N failed``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "sa-hygiene-compose-test"
BASE_URL = "http://localhost:8080"
AS_OF = "2026-11-24"
SNAPSHOT_AT = f"{AS_OF}T04:00:00+00:00"
DIGEST = "sa_regional_digest_east_sa"
DIGEST_AT = f"{AS_OF}T13:00:00+00:00"  # 08:00 in New York
SERVICES = ["postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-worker", "airflow-triggerer"]  # fmt: skip
DAGS = ["sa_snapshot", "sa_report", DIGEST, "sa_channel_posts", "sa_changes", "sa_dm_digests",
        "sa_meeting_reminders", "sa_escalations"]  # fmt: skip
# What the Slack endpoint answers while Slack is not configured (issue 22, defect 4).
SLACK_UNCONFIGURED_STATUS = 503
# Bounds, generous for a busy 2-core machine.
BUILD_TIMEOUT = 1200
INIT_TIMEOUT = 600
UP_TIMEOUT = 600
RUN_TIMEOUT = 600


class Fatal(Exception):
    """A step after which the rest cannot run."""


class Checks:
    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: list[str] = []
        self.t0 = time.monotonic()

    def log(self, message: str) -> None:
        print(f"[compose-test {time.monotonic() - self.t0:6.0f}s] {message}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        (self.passed if ok else self.failed).append(name)
        self.log(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        return ok


def compose_env() -> dict[str, str]:
    """The caller's environment without anything that would override .env in the file."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "_AIRFLOW", "SA_HYGIENE", "SLACK_", "COMPOSE_", "AWS_"))}  # fmt: skip
    env["COMPOSE_PROJECT_NAME"] = PROJECT
    return env


def compose(work: Path, *args: str, timeout: float = 120, check: bool = True, capture: bool = True):
    cmd = ["docker", "compose", *args]
    r = subprocess.run(cmd, cwd=work, env=compose_env(), timeout=timeout, text=True,
                       stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)  # fmt: skip
    if check and r.returncode:
        raise Fatal(f"{' '.join(cmd)} exited {r.returncode}\n{(r.stdout or '')[-4000:]}")
    return r


def copy_tree(work: Path) -> None:
    """The files git would commit (tracked, and new ones not ignored), as they are on disk."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            dst = work / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def fill_env(work: Path) -> None:
    """`cp .env.example .env`, then the blanks filled in as .env.example's comments say."""
    shutil.copy2(work / ".env.example", work / ".env")
    values = {
        # Fernet.generate_key(): 32 random bytes, URL-safe base64.
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
        "_AIRFLOW_WWW_USER_PASSWORD": secrets.token_urlsafe(16),
    }
    lines = []
    for line in (work / ".env").read_text().splitlines():
        key = line.partition("=")[0]
        lines.append(f"{key}={values[key]}" if key in values and not line.startswith("#") else line)
    # The test's own settings: the snapshot DAG copies the demo org instead of calling Salesforce,
    # and the project YAML of ./config (CONFIG) is the README's way of changing a setting.
    lines += ["", "# compose-test", "SA_HYGIENE_SOURCE=folder", "SA_HYGIENE_SOURCE_FOLDER=/opt/airflow/data/org/current",
              "SA_HYGIENE_CONFIG=/opt/airflow/config/sa_hygiene.yaml"]  # fmt: skip
    (work / ".env").write_text("\n".join(lines) + "\n")


# A DAG with catchup=False runs its latest past schedule as soon as it is unpaused: a snapshot of
# today would run before the test's own and become the latest. The next 29 February is years away.
CONFIG = """# compose-test: no scheduled snapshot while the test runs
schedule:
  snapshot_cron: "0 4 29 2 *"
"""


def read_env(work: Path) -> dict[str, str]:
    out = {}
    for line in (work / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


class Api:
    def __init__(self, username: str, password: str) -> None:
        status, body, _ = request("POST", "/auth/token", {"username": username, "password": password})
        if status != 201:
            raise Fatal(f"POST /auth/token: {status} {body[:500]}")
        self.token = json.loads(body)["access_token"]

    def __call__(self, method: str, path: str, payload=None) -> dict:
        status, body, _ = request(method, f"/api/v2{path}", payload, token=self.token)
        if not 200 <= status < 300:
            raise Fatal(f"{method} /api/v2{path}: {status} {body[:1000]}")
        return json.loads(body) if body else {}


def request(method: str, path: str, payload=None, *, token: str | None = None, form: bytes | None = None,
            timeout: float = 60) -> tuple[int, str, dict]:  # fmt: skip
    """(status, body, headers) of one HTTP request to the api-server."""
    headers = {}
    data = None
    if payload is not None:
        data, headers["Content-Type"] = json.dumps(payload).encode(), "application/json"
    if form is not None:
        data, headers["Content-Type"] = form, "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(BASE_URL + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return answer.status, answer.read().decode("utf-8", "replace"), dict(answer.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace"), dict(err.headers)


def wait(what: str, probe, timeout: float, every: float = 3.0):
    """probe()'s first truthy answer, or Fatal after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            found = probe()
            if found:
                return found
        except (OSError, Fatal) as exc:
            last = exc
        time.sleep(every)
    raise Fatal(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last: {last})" if last else ""))


def run_state(api: Api, dag_id: str, run_id: str) -> str | None:
    state = api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
    return state if state in ("success", "failed") else None


def services_status(work: Path) -> dict[str, dict]:
    out = compose(work, "ps", "--all", "--format", "json").stdout.strip()
    rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row["Service"]: row for row in rows}


def the_test(work: Path, c: Checks) -> None:
    c.log(f"working copy {work}")
    copy_tree(work)

    # 1. The README's steps.
    fill_env(work)
    (work / "config").mkdir(exist_ok=True)  # mkdir -p config
    (work / "config" / "sa_hygiene.yaml").write_text(CONFIG)
    config_owner = (work / "config").stat().st_uid
    env = read_env(work)

    t = time.monotonic()
    compose(work, "build", timeout=BUILD_TIMEOUT, capture=False)
    c.check("docker compose build", True, f"{time.monotonic() - t:.0f}s")

    t = time.monotonic()
    init = compose(work, "up", "airflow-init", timeout=INIT_TIMEOUT, check=False)
    status = services_status(work).get("airflow-init", {})
    ok = status.get("State") == "exited" and status.get("ExitCode") == 0
    if not c.check("docker compose up airflow-init", ok, f"{time.monotonic() - t:.0f}s, exit {status.get('ExitCode')}"):
        raise Fatal(init.stdout[-4000:])

    t = time.monotonic()
    up = compose(work, "up", "-d", "--wait", timeout=UP_TIMEOUT, check=False)
    if not c.check("docker compose up -d --wait", up.returncode == 0, f"{time.monotonic() - t:.0f}s"):
        raise Fatal(up.stdout[-4000:])

    # 2. Every service healthy; slack-app only with its profile; ./config untouched.
    status = services_status(work)
    unhealthy = {name: (status.get(name, {}).get("State"), status.get(name, {}).get("Health"))
                 for name in SERVICES if (status.get(name, {}).get("State"), status.get(name, {}).get("Health")) != ("running", "healthy")}  # fmt: skip
    c.check("every service running and healthy", not unhealthy, ", ".join(f"{k}: {v}" for k, v in unhealthy.items()))
    c.check("slack-app not started without the socket-mode profile", "slack-app" not in status)
    owners = {p.stat().st_uid for p in [work / "config", *(work / "config").iterdir()]}
    c.check("./config and its YAML still the user's", owners == {config_owner}, f"owners {owners}")

    # 3. The REST API, the report page, the Slack endpoint.
    api = wait("a token from /auth/token", lambda: Api(env["_AIRFLOW_WWW_USER_USERNAME"], env["_AIRFLOW_WWW_USER_PASSWORD"]), 120)
    dags = wait("the DAGs to be parsed", lambda: _all_dags(api), 300, every=5)
    errors = api("GET", "/importErrors")
    c.check("the DAGs import with no errors", errors["total_entries"] == 0 and set(DAGS) <= set(dags),
            f"{len(dags)} DAGs, {errors['total_entries']} import errors {json.dumps(errors['import_errors'])[:2000]}")  # fmt: skip

    status_code, _, _ = request("GET", "/sa-hygiene/")
    c.check("report page without a login: 401 or 403", status_code in (401, 403), str(status_code))
    status_code, body, _ = request("GET", "/sa-hygiene/", token=api.token)
    c.check("report page before a report: 404 'No hygiene report yet'",
            status_code == 404 and "No hygiene report yet" in body, str(status_code))  # fmt: skip

    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (any python3)
    t = time.monotonic()
    status_code, body, headers = request("POST", "/sa-hygiene-slack/events", form=b"payload=%7B%7D")
    took = time.monotonic() - t
    time.sleep(1)
    logs = compose(work, "logs", "--no-color", "--since", since, "airflow-apiserver", check=False).stdout
    c.check(f"Slack endpoint while Slack is not configured: {SLACK_UNCONFIGURED_STATUS}, one line, no traceback",
            status_code == SLACK_UNCONFIGURED_STATUS and len(body.strip().splitlines()) == 1 and "Traceback" not in logs,
            f"{status_code} in {took:.1f}s: {body.strip()[:200]!r}")  # fmt: skip

    # 4. A demo org, the snapshot, the report and a digest on the Celery worker.
    t = time.monotonic()
    compose(work, "exec", "-T", "airflow-worker", "python", "-c", DEMO_ORG, timeout=600)
    c.log(f"demo org written to the data volume ({time.monotonic() - t:.0f}s)")
    worker_host = compose(work, "exec", "-T", "airflow-worker", "hostname").stdout.strip()

    for dag_id in ("sa_snapshot", "sa_report", DIGEST):
        api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    t = time.monotonic()
    run = api("POST", "/dags/sa_snapshot/dagRuns", {"logical_date": SNAPSHOT_AT, "conf": {}})["dag_run_id"]
    state = wait("sa_snapshot", lambda: run_state(api, "sa_snapshot", run), RUN_TIMEOUT)
    c.check("sa_snapshot succeeded", state == "success", f"{state} in {time.monotonic() - t:.0f}s")
    on_worker(api, c, "sa_snapshot", run, worker_host)

    t = time.monotonic()
    report = wait("sa_report's asset-triggered run", lambda: _finished_run(api, "sa_report"), RUN_TIMEOUT)
    c.check("sa_report succeeded (triggered by the snapshot)", report["state"] == "success",
            f"{report['state']} in {time.monotonic() - t:.0f}s")  # fmt: skip
    on_worker(api, c, "sa_report", report["dag_run_id"], worker_host)
    status_code, body, headers = request("GET", "/sa-hygiene/", token=api.token)
    c.check("report page serves the report", status_code == 200 and "text/html" in headers.get("content-type", "")
            and "No hygiene report yet" not in body, str(status_code))  # fmt: skip

    t = time.monotonic()
    run = api("POST", f"/dags/{DIGEST}/dagRuns", {"logical_date": DIGEST_AT, "conf": {}})["dag_run_id"]
    state = wait(DIGEST, lambda: run_state(api, DIGEST, run), RUN_TIMEOUT)
    c.check(f"{DIGEST} succeeded", state == "success", f"{state} in {time.monotonic() - t:.0f}s")
    on_worker(api, c, DIGEST, run, worker_host)
    # The outbox keeps each run's Slack calls in <outbox>/<dag id>_<run id>/calls.jsonl.
    folder = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{DIGEST}/{run}")
    calls = compose(work, "exec", "-T", "airflow-worker", "cat", f"/opt/airflow/data/outbox/{folder}/calls.jsonl",
                    check=False).stdout  # fmt: skip
    posted = [json.loads(line) for line in calls.splitlines() if line.startswith("{")]
    east = [p for p in posted if p.get("method") == "chat.postMessage" and "sa-activities-east-sa" in json.dumps(p)]
    c.check("the digest is in the outbox", bool(east), f"{len(posted)} Slack calls, {len(east)} posts to #sa-activities-east-sa")

    errors = api("GET", "/importErrors")
    c.check("still no import errors", errors["total_entries"] == 0, str(errors["total_entries"]))
    # .env.example's token_urlsafe(64) keys are long enough for Airflow's HMAC (issue 22, defect 6).
    logs = compose(work, "logs", "--no-color", check=False, timeout=120).stdout
    c.check("no InsecureKeyLengthWarning in the services' logs", "InsecureKeyLengthWarning" not in logs)


def _all_dags(api: Api) -> list[str] | None:
    """The DAG ids once every expected one is there, or as soon as a file failed to import."""
    found = [d["dag_id"] for d in api("GET", "/dags?limit=100")["dags"]]
    if set(DAGS) <= set(found) or api("GET", "/importErrors")["total_entries"]:
        return found or ["(none)"]
    return None


def _finished_run(api: Api, dag_id: str) -> dict | None:
    runs = api("GET", f"/dags/{dag_id}/dagRuns?limit=10")["dag_runs"]
    done = [r for r in runs if r["state"] in ("success", "failed")]
    return done[0] if done else None


def on_worker(api: Api, c: Checks, dag_id: str, run_id: str, worker_host: str) -> None:
    tis = api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    elsewhere = {ti["task_id"]: (ti["state"], ti.get("hostname")) for ti in tis
                 if ti["state"] != "skipped" and ti.get("hostname") != worker_host}  # fmt: skip
    c.check(f"{dag_id}: every task ran on the Celery worker", not elsewhere,
            f"{len(tis)} tasks" + (f", elsewhere: {elsewhere}" if elsewhere else ""))  # fmt: skip


# Run in the worker container: the demo org and yesterday's snapshot in the store, as
# tests/deployment/test_distributed.py prepares them on the host.
DEMO_ORG = f"""
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from sa_hygiene.contract.config import load_config
from sa_hygiene.demo.org import write_demo_org
from sa_hygiene.source.store import SnapshotStore

cfg = load_config()
org = Path("/opt/airflow/data/org")
write_demo_org(org, date.fromisoformat("{AS_OF}"), scale=0.3)
at = datetime.fromisoformat("{SNAPSHOT_AT}") - timedelta(days=1)
SnapshotStore(cfg.store.url, keep=cfg.store.keep).commit_folder(org / "previous", at)
"""


def diagnose(work: Path, c: Checks) -> None:
    """What the services said, when something failed."""
    try:
        c.log("docker compose ps --all:\n" + compose(work, "ps", "--all", check=False).stdout)
        logs = compose(work, "logs", "--no-color", "--timestamps", check=False, timeout=120).stdout
        keep = Path(tempfile.gettempdir()) / "sa-hygiene-compose-test.log"
        keep.write_text(logs)
        c.log(f"the services' logs: {keep}; their last lines:\n" + "\n".join(logs.splitlines()[-80:]))
    except Exception as exc:  # diagnostics must not hide the failure
        c.log(f"no diagnostics: {exc}")


def main() -> int:
    c = Checks()
    work = Path(tempfile.mkdtemp(prefix="sa-hygiene-compose-"))
    # A stack left by an interrupted run would hold the port and the volumes.
    subprocess.run(["docker", "compose", "-p", PROJECT, "down", "-v", "--remove-orphans"], env=compose_env(),
                   capture_output=True, timeout=300)  # fmt: skip
    try:
        the_test(work, c)
    except Fatal as exc:
        c.check("the test ran to its end", False, str(exc)[-6000:])
    except subprocess.TimeoutExpired as exc:
        c.check("the test ran to its end", False, f"timed out: {exc}")
    finally:
        if c.failed:
            diagnose(work, c)
        t = time.monotonic()
        down = compose(work, "down", "-v", "--remove-orphans", timeout=300, check=False)
        c.check("docker compose down -v", down.returncode == 0, f"{time.monotonic() - t:.0f}s")
        shutil.rmtree(work, ignore_errors=True)
        if work.exists():  # logs/ written by the containers' user
            subprocess.run(["docker", "run", "--rm", "--user", "0", "--entrypoint", "rm", "-v", f"{work}:/w",
                            "sa-hygiene-airflow:latest", "-rf", "/w/logs"], capture_output=True)  # fmt: skip
            shutil.rmtree(work, ignore_errors=True)
    c.log(f"done in {time.monotonic() - c.t0:.0f}s" + (": failed " + "; ".join(c.failed) if c.failed else ""))
    print(f"compose-test: {len(c.passed)} passed, {len(c.failed)} failed", flush=True)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
