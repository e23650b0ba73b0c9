"""Airflow distributed as docker-compose.yaml deploys it, on this machine, end to end.

The CeleryExecutor on the local PostgreSQL (a metadata database and a ledger database of the
test's own) and Redis (a db number of its own), with the api-server, the scheduler, the
dag-processor and a Celery worker as separate processes. Their environment is the compose
file's, with its hosts and paths swapped for local ones (only keys the file sets may be
swapped) and a few timings shortened. Digests go to the fake Slack Web API of tests/fakes.

The DAGs are triggered through the REST API (a JWT from the SimpleAuthManager's /auth/token).
Then the Celery worker is killed, with everything it started, while a post is in Slack but
its answer is not back: Airflow notices the missing heartbeats, retries the task on a new
worker, and every digest part is still posted exactly once. The module takes 85-110 s here
(README, "Measured here").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from compose_file import (
    ROOT,
    environment,
    init_pools,
    init_python,
    init_runs_db_upgrade,
    load_compose,
    read_dotenv,
    required_variables,
)
from fakes.slack import TOKEN, FakeSlack
from services import postgres_database, redis_database

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
# Short enough for a test, long enough that a busy two-core machine never misses a heartbeat
# (the task supervisor heartbeats every 5 s).
HEARTBEAT_TIMEOUT = 20
POSTS_BEFORE_THE_KILL = 4


@dataclass
class Process:
    popen: subprocess.Popen
    log: Path


class Cluster:
    """Airflow's components as local processes. Each runs in a session of its own, so that a
    kill reaches everything it started: Celery's pool, the task supervisor, and the task,
    which Airflow puts in a process group of its own."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.procs: dict[str, Process] = {}
        self.killed: dict[str, int] = {}  # name -> session id
        self._lock = threading.Lock()  # kill() may come from the fake Slack's thread

    def run(self, *args: str) -> None:
        r = subprocess.run([str(BIN / "airflow"), *args], env=self.env, cwd=self.home, capture_output=True, text=True)
        assert r.returncode == 0, f"airflow {' '.join(args)}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"

    def start(self, name: str, *args: str) -> None:
        log = self.home / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen([str(BIN / "airflow"), *args], env=self.env, cwd=self.home, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.procs[name] = Process(popen, log)

    def kill(self, name: str) -> None:
        """SIGKILL, as a machine that dies: nothing it started gets to clean up."""
        with self._lock:
            proc = self.procs.pop(name)
            _signal_session(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=30)
            self.killed[name] = proc.popen.pid

    def stop(self) -> None:
        for proc in self.procs.values():
            _signal_session(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_session(proc.popen.pid, signal.SIGKILL)  # stragglers of a stopped leader too
            proc.popen.wait(timeout=30)
        self.procs.clear()

    def check_alive(self) -> None:
        with self._lock:
            dead = {name: p.popen.returncode for name, p in self.procs.items() if p.popen.poll() is not None}
        assert not dead, f"exited: {dead}\n{self.logs()}"

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name}.log\n" + "\n".join(p.log.read_text(errors="replace").splitlines()[-lines:])
                         for name, p in self.procs.items())  # fmt: skip


def _session(sid: int) -> list[int]:
    """The live processes of a session (zombies are dead already, waiting to be reaped)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid and Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(entry))
            except (ProcessLookupError, FileNotFoundError):
                pass
    return pids


def _signal_session(sid: int, sig: signal.Signals) -> None:
    for _ in range(3):  # a process may fork while its session is being signalled
        for pid in _session(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig != signal.SIGKILL:
            return
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, cluster: Cluster, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive()
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{cluster.logs()}")
        time.sleep(every)


class Api:
    """Airflow 3's REST API (/api/v2) with a token of the SimpleAuthManager."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        answer = self.http.post("/auth/token", json={"username": username, "password": password})
        assert answer.status_code == 201, answer.text
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def __call__(self, method: str, path: str, **kw) -> dict:
        answer = self.http.request(method, f"/api/v2{path}", **kw)
        assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def trigger(self, dag_id: str, logical_date: datetime, conf: dict | None = None) -> str:
        self("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date.isoformat(), "conf": conf or {}})
        return run["dag_run_id"]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        found = self("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti for ti in found}

    def returned(self, dag_id: str, run_id: str, task_id: str):
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self("GET", path)["value"]


@dataclass
class Deployment:
    cluster: Cluster
    api: Api
    slack: FakeSlack
    store: Path
    ledger_url: str
    worker_domain: str
    ports: dict[str, int]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, dict]:
        """The run's task instances once it has succeeded (its logs in the failure message otherwise)."""
        state = wait_for(f"{dag_id} {run_id}", lambda: self._finished(dag_id, run_id), self.cluster, timeout)
        tis = self.api.task_instances(dag_id, run_id)
        assert state == "success", f"{dag_id} {run_id}: {state} {tis}\n{self.cluster.logs()}"
        return tis

    def _finished(self, dag_id: str, run_id: str) -> str | None:
        state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        return state if state in ("success", "failed") else None

    def start_worker(self, n: int) -> None:
        start_worker(self.cluster, n, self.worker_domain)


def start_worker(cluster: Cluster, n: int, domain: str) -> None:
    """Celery worker ``worker-<n>``, named ``celery@worker<n>.<domain>`` as a container's would be
    ``celery@<its hostname>``; no log server (its port would clash with other test runs)."""
    cluster.start(f"worker-{n}", "celery", "worker", "--celery-hostname", f"worker{n}.{domain}", "--skip-serve-logs")


def posted(slack: FakeSlack) -> Counter:
    """(delivery key, part) of every message Slack holds, with how many times it was posted."""
    return Counter((m["metadata"]["event_payload"]["key"], m["metadata"]["event_payload"]["part"])
                   for posts in slack.messages.values() for m in posts)  # fmt: skip


def slack_workspace(cfg, org: Path) -> FakeSlack:
    """A Slack that knows every channel the configuration names and every user of the demo org."""
    from sa_hygiene.source.snapshot import read_snapshot

    slack = FakeSlack()
    channels = {cfg.region_channel(key) for key in cfg.regions}
    channels |= {wf.recipient.channel for wf in cfg.workflows.values() if wf.recipient.channel}
    channels |= {cfg.channels.operations, cfg.routing.unrouted_channel}
    for n, name in enumerate(sorted(channels)):
        slack.add_channel(name.removeprefix("#"), f"C{n:08d}")
    users = read_snapshot(org, cfg, objects=("User",))["User"]
    for n, email in enumerate(sorted(users["email"].dropna().unique())):
        slack.add_user(email, f"U{n:08d}")
    return slack.start()


def airflow_env(root: Path, *, port: int, scheduler_port: int, metadata: str, ledger_url: str, redis_db: int,
                slack: FakeSlack, password: str) -> dict[str, str]:  # fmt: skip
    """The compose file's environment for its Airflow services, pointed at this machine."""
    from cryptography.fernet import Fernet

    dotenv = {**read_dotenv(), "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
              "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(24).hex(), "AIRFLOW__API__SECRET_KEY": os.urandom(24).hex(),
              "_AIRFLOW_WWW_USER_PASSWORD": password, "SA_HYGIENE_DELIVERY": "slack",
              "AIRFLOW_CONN_SLACK_API_DEFAULT": json.dumps({"conn_type": "slack", "password": TOKEN,
                                                            "extra": {"base_url": slack.base_url}})}  # fmt: skip
    compose = environment(load_compose(dotenv)["services"]["airflow-worker"])
    pg = "postgres@127.0.0.1:5432"
    local = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{metadata}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}/{metadata}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "auth" / "passwords.json"),
        "SA_HYGIENE_STORE": str(root / "data" / "store"),
        "SA_HYGIENE_OUTBOX": str(root / "data" / "outbox"),
        "SA_HYGIENE_LEDGER_URL": ledger_url,
    }
    assert set(local) <= set(compose), sorted(set(local) - set(compose))
    here = {
        # What the image and the mounts give a container.
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(scheduler_port),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "PATH": f"{BIN}:{os.environ['PATH']}",
        # A dead task is noticed in seconds rather than five minutes, and retried at once.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "SA_HYGIENE_RETRY_DELAY_SECONDS": "2",
        # Manual runs only: the demo's day is not today, and no scheduled run may post in between.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # The snapshot DAG copies the demo org instead of calling Salesforce.
        "SA_HYGIENE_SOURCE": "folder",
        "SA_HYGIENE_SOURCE_FOLDER": str(root / "org" / "current"),
        # Bytecode cached across the processes, as an image has it (this shell may forbid writing it).
        "PYTHONPYCACHEPREFIX": str(root / "pycache"),
        "GX_ANALYTICS_ENABLED": "false",
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SA_HYGIENE_", "PYTHONDONTWRITE"))}
    return {**base, **dotenv, **compose, **local, **here}


@pytest.fixture(scope="module")
def deployment():
    from sa_hygiene.contract.config import load_config
    from sa_hygiene.demo.org import write_demo_org
    from sa_hygiene.source.store import SnapshotStore

    with ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="sa-hygiene-distributed-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        metadata = stack.enter_context(postgres_database("sa_hygiene_e2e_airflow"))
        ledger_db = f"{metadata}_ledger"  # created by airflow-init's own code, below
        ledger_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{ledger_db}"
        stack.callback(_drop_database, ledger_db)
        redis_db = stack.enter_context(redis_database())

        cfg = load_config()
        write_demo_org(root / "org", AS_OF.date(), scale=0.3)
        store = root / "data" / "store"
        yesterday = AS_OF.replace(hour=4) - timedelta(days=1)
        SnapshotStore(str(store), keep=cfg.store.keep).commit_folder(root / "org" / "previous", yesterday)
        slack = slack_workspace(cfg, root / "org" / "current")
        stack.callback(slack.stop)

        ports = {"api": free_port(), "scheduler": free_port()}
        password = os.urandom(12).hex()
        env = airflow_env(root, port=ports["api"], scheduler_port=ports["scheduler"], metadata=metadata,
                          ledger_url=ledger_url, redis_db=redis_db, slack=slack, password=password)  # fmt: skip
        (root / "auth").mkdir()
        cluster = Cluster(root, env)
        stack.callback(cluster.stop)

        cluster.run("db", "migrate")  # what the image's entrypoint does for airflow-init
        subprocess.run([sys.executable, "-c", init_python()], env=env, check=True)
        assert init_runs_db_upgrade()
        subprocess.run([sys.executable, "-m", "sa_hygiene", "db-upgrade"], env=env, check=True)
        cluster.start("api-server", "api-server")
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        worker_domain = f"e2e{os.urandom(4).hex()}"
        start_worker(cluster, 1, worker_domain)

        base = f"http://127.0.0.1:{ports['api']}"
        wait_for("the api-server", lambda: httpx.get(f"{base}/api/v2/monitor/health").is_success, cluster, 120)
        api = Api(base, env["_AIRFLOW_WWW_USER_USERNAME"], password)
        stack.callback(api.http.close)  # before the api-server stops: an open connection delays it
        for name, slots, description in init_pools():
            api("POST", "/pools", json={"name": name, "slots": slots, "description": description})
        dag_ids = ["sa_snapshot", "sa_regional_digest_east_sa", "sa_channel_posts", "sa_meeting_reminders"]
        wait_for("the DAGs to be parsed", lambda: all(_dag_exists(api, d) for d in dag_ids), cluster, 120)
        yield Deployment(cluster, api, slack, store, ledger_url, worker_domain, ports)


def _dag_exists(api: Api, dag_id: str) -> bool:
    return api.http.get(f"/api/v2/dags/{dag_id}").status_code == 200


def _drop_database(name: str) -> None:
    import psycopg
    from services import PG_ADMIN

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_compose_health_checks_pass_against_the_running_components(deployment):
    """Each service's health check command of the compose file, against its local process:
    ports are this test's; HOSTNAME is what the container's would be, the name the
    component registered under."""
    from airflow.utils.net import get_hostname

    services = load_compose({**read_dotenv(), **dict.fromkeys(required_variables(), "x")})["services"]
    ports = deployment.ports
    hostnames = {"airflow-dag-processor": get_hostname(), "airflow-worker": f"worker1.{deployment.worker_domain}"}
    commands, envs = {}, {}
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker"):
        command = " ".join(services[name]["healthcheck"]["test"][1:])
        command = command.replace("localhost:8080", f"127.0.0.1:{ports['api']}")
        commands[name] = command.replace("localhost:8974", f"127.0.0.1:{ports['scheduler']}")
        envs[name] = {**deployment.cluster.env, "HOSTNAME": hostnames.get(name, "")}
    for _ in range(3):  # Compose too marks a service unhealthy only after several failures in a row
        checks = {name: subprocess.Popen(["bash", "-c", command], env=envs[name], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True) for name, command in commands.items()}  # fmt: skip
        failed = {}
        for name, check in checks.items():
            out = check.communicate(timeout=120)[0]
            if check.returncode:
                failed[name] = out[-1500:]
        commands = {name: commands[name] for name in failed}
        if not failed:
            break
        time.sleep(2)
    assert failed == {}


def test_snapshot_and_digests_triggered_through_the_rest_api(deployment):
    api = deployment.api
    run = api.trigger("sa_snapshot", AS_OF.replace(hour=4))
    tis = deployment.wait_for_run("sa_snapshot", run)
    assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(
        ["extract_snapshot", "validate_snapshot", "commit_snapshot"], "success")  # fmt: skip
    snapshots = sorted(p.name for p in deployment.store.iterdir() if p.name[:1].isdigit())
    assert snapshots == ["20261123T040000Z", "20261124T040000Z"]

    # 08:00 in New York: east-sa's regional digest and the fixed channels' posts, side by side.
    runs = {dag_id: api.trigger(dag_id, AS_OF.replace(hour=13)) for dag_id in ("sa_regional_digest_east_sa", "sa_channel_posts")}
    for dag_id, run in runs.items():
        deployment.wait_for_run(dag_id, run)
    keys = {key for key, part in posted(deployment.slack) if part == 0}
    assert "regional_digest|channel:#sa-activities-east-sa|2026-11-24" in keys
    # wf-09 (#sa-chorus-calls) is posted as it happens (sa_activity_posts), not in the 08:00 posts.
    assert {"#sa-tech-eval-start", "#sa-tech-eval-end", "#stage-move-02",
            "#sa-primary-sa-change"} <= {k.split("|")[1].removeprefix("channel:") for k in keys if k.startswith("channel_post|")}  # fmt: skip
    result = api.returned("sa_channel_posts", runs["sa_channel_posts"], "post_channel_digests")
    assert result["sent"] == result["messages"] >= 4 and result["already_sent"] == 0
    assert max(posted(deployment.slack).values()) == 1


def test_a_worker_killed_mid_delivery_posts_every_digest_once(deployment):
    """The worker dies after Slack stored a post and before its answer arrives: the ledger says
    pending, and the retry on the next worker finds the post in the DM's history instead of
    posting it again."""
    slack, api = deployment.slack, deployment.api
    before = posted(slack)
    deployment.slack.fail("chat.postMessage", after=POSTS_BEFORE_THE_KILL, after_storing=True, drop=True,
                          on_hit=lambda: deployment.cluster.kill("worker-1"))  # fmt: skip
    window = {"since": (AS_OF - timedelta(days=1)).isoformat(), "until": AS_OF.isoformat()}
    run = api.trigger("sa_meeting_reminders", AS_OF, window)
    wait_for("the worker to be killed", lambda: "worker-1" in deployment.cluster.killed, deployment.cluster, 180)
    assert _session(deployment.cluster.killed["worker-1"]) == [], "nothing of the worker may survive, the task included"
    killed_at = len(slack.requests)
    deployment.start_worker(2)

    tis = deployment.wait_for_run("sa_meeting_reminders", run, timeout=240)
    assert tis["evaluate_rules"]["try_number"] == 1
    assert tis["post_meeting_reminders"]["try_number"] == 2, "the killed try is retried on the new worker"
    # Noticed by its missing heartbeats (the scheduler's event log), not by anything the dead worker said.
    timeouts = api("GET", "/eventLogs", params={"dag_id": "sa_meeting_reminders", "run_id": run, "event": "heartbeat timeout"})
    assert [(e["task_id"], e["try_number"]) for e in timeouts["event_logs"]] == [("post_meeting_reminders", 1)]
    reminders = Counter({k: n for k, n in posted(slack).items() if k not in before})
    assert max(reminders.values()) == 1, [k for k, n in reminders.items() if n > 1]
    result = api.returned("sa_meeting_reminders", run, "post_meeting_reminders")
    assert result["already_sent"] == POSTS_BEFORE_THE_KILL
    assert result["sent"] + result["already_sent"] == result["messages"] > POSTS_BEFORE_THE_KILL + 2
    # Every reminder plus the operations summary, each once; the fifth was found, not posted again.
    assert sum(1 for key, _ in reminders if key.startswith("meeting_reminder|")) == result["messages"]
    assert any(r.method == "conversations.history" for r in slack.requests[killed_at:])
    assert _ledger_states(deployment.ledger_url) == {"sent"}


def _ledger_states(url: str) -> set[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT DISTINCT state FROM slack_deliveries"))}
    finally:
        engine.dispose()
