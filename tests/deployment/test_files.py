"""The deployment files as a platform engineer gets them: docker-compose.yaml in the shape of
the official Airflow 3 file, the Dockerfile it builds, .env.example with every secret blank,
and no secret anywhere in the repository. (tests/deployment/test_distributed.py runs the same
environment as local processes.)

These are static checks. The files run as containers only in `make compose-test`
(deploy/compose-test.sh), which needs a Docker engine and is not part of `make test` or CI:
run it after changing docker-compose.yaml, the Dockerfile, .env.example, requirements*.txt or
the locks (README, "Deploying it")."""

import json
import re
import secrets
import subprocess
import sys

import pytest
from compose_file import (
    ROOT,
    MissingVariable,
    environment,
    init_pools,
    init_python,
    load_compose,
    read_dotenv,
    required_variables,
)

pytestmark = pytest.mark.unit

AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer"}  # fmt: skip
CONNECTIONS = ("AIRFLOW_CONN_SALESFORCE_DEFAULT", "AIRFLOW_CONN_SLACK_API_DEFAULT")
# The Slack app's secrets, for the api-server's endpoint and the socket-mode slack-app service.
SLACK_SECRETS = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN")
# Health checks that start a whole Airflow or Celery CLI process: 4-21 s on a busy 2-core host.
CLI_CHECKED = ("airflow-dag-processor", "airflow-worker", "airflow-triggerer")
IMAGE = "sa-hygiene-airflow:latest"
REQUIRED_SECRETS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                    "_AIRFLOW_WWW_USER_PASSWORD")
# What real credentials look like; test doubles (tests/fakes: "xoxb-fake-...") do not match.
SECRET_PATTERNS = {
    "Slack token": r"xox[abposr]-\d{6,}-[0-9A-Za-z-]{8,}",
    "Slack webhook": r"hooks\.slack\.com/services/T[0-9A-Z]{6,}/B[0-9A-Z]{6,}/\w{16,}",
    "private key": r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----",
    "AWS access key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "Fernet key": r"FERNET_KEY\s*[:=]\s*['\"]?[A-Za-z0-9_-]{43}=",
    "Salesforce session": r"\b00D[0-9A-Za-z]{12,15}![0-9A-Za-z._]{40,}",
    "JWT": r"\beyJ[0-9A-Za-z_-]{10,}\.eyJ[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]{10,}",
}


@pytest.fixture(scope="module")
def compose():
    """The file as Compose runs it with .env.example's keys and the required secrets filled in."""
    return load_compose({**read_dotenv(), **{name: "filled-in" for name in REQUIRED_SECRETS}})


def test_the_services_of_the_official_file_each_with_a_health_check(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "airflow-init", "slack-app", *AIRFLOW_SERVICES}
    for name, service in services.items():
        if name != "airflow-init":
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
            assert service["restart"] == "always", name
    checks = {name: " ".join(services[name]["healthcheck"]["test"][1:]) for name in services if name != "airflow-init"}
    assert checks["airflow-apiserver"] == "curl --fail http://localhost:8080/api/v2/monitor/health"
    assert checks["airflow-scheduler"] == "curl --fail http://localhost:8974/health"
    assert checks["airflow-dag-processor"] == 'airflow jobs check --job-type DagProcessorJob --hostname "${HOSTNAME}"'
    assert checks["airflow-triggerer"] == 'airflow jobs check --job-type TriggererJob --hostname "${HOSTNAME}"'
    # Airflow 3's Celery app lives in the provider; Airflow 2's module does not exist any more.
    assert checks["airflow-worker"] == (
        'celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d "celery@${HOSTNAME}"'
    )
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


def seconds(duration: str) -> int:
    """A Compose duration such as 1m30s or 45s."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


def test_health_checks_leave_a_busy_host_time_to_answer(compose):
    """A check that times out counts as a failure: with 10 s, `airflow jobs check` on a busy host
    failed 13 times in a row and the service never became healthy (issue 22)."""
    for name, service in compose["services"].items():
        if name == "airflow-init":
            continue
        check = service["healthcheck"]
        assert seconds(check["timeout"]) >= (45 if name in CLI_CHECKED else 30), name
        assert seconds(check["start_period"]) >= (60 if name.startswith("airflow-") else 5), name
    # ... and the image has the bytecode those processes import, so that no check compiles Airflow.
    dockerfile = (ROOT / "Dockerfile").read_text()
    last_run = [line for line in dockerfile.splitlines() if line.startswith("RUN ")][-1]
    assert last_run.startswith("RUN python -m compileall ") and "import airflow" in last_run
    for folder in ("/opt/sa-hygiene/include", "/opt/airflow/dags", "/opt/airflow/plugins"):
        assert folder in last_run


def test_compose_version_and_the_file_header():
    """The file needs Compose 2.24 (env_file's `required`, `up --wait`); its header says so, names
    test files that exist and the steps of the README."""
    header = "".join(line for line in (ROOT / "docker-compose.yaml").read_text().splitlines(True) if line.startswith("#"))
    assert "Docker Compose 2.24 or later" in header
    cited = re.findall(r"tests/\S+\.py", header)
    assert cited and all((ROOT / path).is_file() for path in cited), cited
    readme = (ROOT / "README.md").read_text()
    assert "Compose 2.24" in readme
    for step in ("cp .env.example .env", "docker compose build", "docker compose up airflow-init",
                 "docker compose up -d --wait"):
        assert step in header and step in readme, step


def test_start_order_waits_for_healthy_services_and_a_completed_init(compose):
    services = compose["services"]
    healthy = {"condition": "service_healthy"}
    assert services["airflow-init"]["depends_on"] == {"postgres": healthy, "redis": healthy}
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == deps["redis"] == healthy, name
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}, name
    # Workers run tasks that report to the api-server's Execution API from their first second.
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"] == healthy


def test_the_slack_app_runs_in_socket_mode_from_the_same_image(compose):
    app = compose["services"]["slack-app"]
    assert app["command"] == ["python", "-m", "sa_hygiene", "slack-app"]
    assert app["image"] == IMAGE and "build" not in app and app["env_file"] == [{"path": ".env", "required": False}]
    # Without Slack tokens it cannot start: only with `--profile socket-mode`, so that a plain
    # `docker compose up -d --wait` waits for services that can be healthy.
    assert app["profiles"] == ["socket-mode"]
    assert [name for name, service in compose["services"].items() if "profiles" in service] == ["slack-app"]
    assert app["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    assert app["depends_on"]["postgres"] == {"condition": "service_healthy"}  # the alert state lives there
    assert not any(k.startswith("SLACK_") for k in environment(app))  # its tokens come from .env only


def test_init_creates_the_pools_the_dags_use():
    # The DAGs' tasks name these pools (tests/dags/test_dag_integrity.py); a missing pool would
    # leave them scheduled for ever.
    assert init_pools() == [("salesforce_api", 2, "Concurrent Salesforce API work"),
                            ("slack_api", 4, "Concurrent Slack delivery")]  # fmt: skip


def test_celery_on_redis_and_postgresql_with_one_environment_for_every_airflow_service(compose):
    services = compose["services"]
    env = environment(services["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert re.fullmatch(r"redis://:?@?redis:6379/\d+", env["AIRFLOW__CELERY__BROKER_URL"])
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:airflow@postgres/")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:airflow@postgres/")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        extra = {"airflow-worker": {"DUMB_INIT_SETSID"},
                 "airflow-init": {"_AIRFLOW_DB_MIGRATE", "_AIRFLOW_WWW_USER_USERNAME", "_AIRFLOW_WWW_USER_PASSWORD"}}  # fmt: skip
        assert set(environment(services[name])) - set(env) == extra.get(name, set()), name
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name


def test_auth_manager_and_secrets_come_from_env(compose):
    env = environment(compose["services"]["airflow-apiserver"])
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "airflow:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith("/opt/airflow/auth/")
    assert all(env[name] == "filled-in" for name in REQUIRED_SECRETS if name.startswith("AIRFLOW__"))
    # User creation by the image's entrypoint is for the FAB auth manager only.
    assert "_AIRFLOW_WWW_USER_CREATE" not in environment(compose["services"]["airflow-init"])
    for secret in REQUIRED_SECRETS:
        with pytest.raises(MissingVariable, match=secret):
            load_compose({**read_dotenv(), **{s: "filled-in" for s in REQUIRED_SECRETS if s != secret}})


def test_sa_hygiene_settings_are_the_projects_environment_overrides(compose):
    from sa_hygiene.contract.config import CONFIG_ENV, ENV_OVERRIDES

    env = environment(compose["services"]["airflow-worker"])
    ours = {k for k in env if k.startswith("SA_HYGIENE_")}
    assert ours <= set(ENV_OVERRIDES) | {CONFIG_ENV}
    # Celery workers on several machines share the ledger in PostgreSQL, not a SQLite file.
    assert env["SA_HYGIENE_LEDGER_URL"].startswith("postgresql+psycopg://airflow:airflow@postgres/")
    assert env["SA_HYGIENE_STORE"].startswith("/opt/airflow/data/")
    assert env["SA_HYGIENE_OUTBOX"].startswith("/opt/airflow/data/")


def test_the_image_is_built_once_from_the_dockerfile_not_installed_at_start(compose):
    # `docker compose build` builds it once, for airflow-init; every other service runs that tag.
    builders = [name for name, service in compose["services"].items() if "build" in service]
    assert builders == ["airflow-init"] and compose["services"]["airflow-init"]["build"] == "."
    for name in [*AIRFLOW_SERVICES, "airflow-init", "slack-app"]:
        assert compose["services"][name]["image"] == IMAGE, name
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in environment(compose["services"][name]), name
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(3\.3\.\d+)-python3\.11$", dockerfile, re.M)
    assert base, "FROM apache/airflow:3.3.x-python3.11"
    pin = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pin and pin.group(1) == base.group(1), "the image's Airflow is the one requirements.txt pins"
    # The runtime requirements at the lock's versions (the ones make test checks), no test tools.
    assert re.search(r"^RUN pip install .*-r /opt/sa-hygiene/requirements\.txt -c /opt/sa-hygiene/requirements\.lock$",
                     dockerfile, re.M)  # fmt: skip
    assert re.search(r"^RUN pip install .*-e /opt/sa-hygiene$", dockerfile, re.M)
    # Only what the image needs goes to the build: never .venv, .env or local state.
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert rules[0] == "*"
    assert {r[1:].rstrip("/") for r in rules if r[0] == "!"} == {"requirements.txt", "requirements.lock", "pyproject.toml",
                                                                 "README.md", "include", "dags", "plugins"}  # fmt: skip


def pins(name: str) -> dict[str, str]:
    """name -> version of the `name==version` lines of a requirements or lock file."""
    found = re.findall(r"^([A-Za-z0-9._-]+)(?:\[[^]]*\])?==(\S+)", (ROOT / name).read_text(), re.M)
    return {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in found}


def test_runtime_and_development_requirements_are_split_and_locked():
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    lock, dev_lock = pins("requirements.lock"), pins("requirements-dev.lock")
    tools = {"pytest", "hypothesis", "trustme", "ruff"}
    assert tools <= set(dev) and not tools & set(runtime) and not tools & set(lock)
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    # Each lock holds its file's pins; the development lock has the runtime lock's versions.
    assert all(lock.get(n) == v for n, v in runtime.items()), "make lock: requirements.lock is stale"
    assert all(dev_lock.get(n) == v for n, v in dev.items()), "make lock: requirements-dev.lock is stale"
    assert {n: dev_lock.get(n) for n in lock} == lock, "requirements-dev.lock must keep requirements.lock's versions"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"uv pip sync .*requirements-dev\.lock$", makefile, re.M)


def test_dags_plugins_and_include_are_mounted_where_the_image_has_them(compose):
    volumes = compose["x-airflow-common"]["volumes"]
    assert {"./dags:/opt/airflow/dags", "./plugins:/opt/airflow/plugins", "./include:/opt/sa-hygiene/include",
            "./logs:/opt/airflow/logs"} <= set(volumes)  # fmt: skip
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY --chown=airflow:0 include /opt/sa-hygiene/include" in dockerfile
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        assert compose["services"][name]["volumes"] == volumes, name
        assert compose["services"][name]["user"] == ("0:0" if name == "airflow-init" else "50000:0"), name


def test_init_never_takes_the_users_config_folder(compose):
    """./config is the user's: read only in the containers and never chowned, or a host user
    could no longer add sa_hygiene.yaml to it (AIRFLOW_UID=50000)."""
    assert "./config:/opt/airflow/config:ro" in compose["x-airflow-common"]["volumes"]
    script = compose["services"]["airflow-init"]["command"][1]
    for line in script.splitlines():
        if re.search(r"\b(chown|chmod|mkdir|rm|mv|cp)\b", line):
            assert "/opt/airflow/config" not in line, line


def test_env_example_has_the_connections_and_every_secret_blank():
    env = read_dotenv()
    for name in CONNECTIONS:
        assert env[name] == "", name
    secretive = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY|^AIRFLOW_CONN_")
    assert {k for k in env if secretive.search(k)} == {*CONNECTIONS, *REQUIRED_SECRETS, *SLACK_SECRETS}
    assert all(env[k] == "" for k in env if secretive.search(k))
    # Every variable Compose requires is in the example, to be filled in.
    assert required_variables() == set(REQUIRED_SECRETS) and required_variables() <= set(env)
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".env must be git-ignored"


def test_env_example_explains_the_slack_app_and_long_enough_keys():
    text = (ROOT / ".env.example").read_text()
    # Following the connection example gives the Slack app what it needs (else "no signing secret").
    example = re.search(r"^#\s*'\{\"conn_type\": \"slack\".*?\}'$", text, re.M | re.S)
    assert example and '"signing_secret"' in example.group(0) and '"app_token"' in example.group(0)
    # The compose file's comments send these to .env.
    compose_text = (ROOT / "docker-compose.yaml").read_text()
    assert all(name in compose_text for name in SLACK_SECRETS)
    # Airflow warns (InsecureKeyLengthWarning) about HMAC keys shorter than 64 bytes.
    sizes = [int(n) for n in re.findall(r"secrets\.token_urlsafe\((\d+)\)", text)]
    assert sizes and all(len(secrets.token_urlsafe(n)) >= 64 for n in sizes), sizes


def test_no_secret_in_the_repository():
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")  # fmt: skip
    assert ".env" not in files and ".env.example" in files
    found = []
    for name in filter(None, files):
        path = ROOT / name
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        found += [f"{name}: {what}" for what, pattern in SECRET_PATTERNS.items() if re.search(pattern, text)]
    assert found == []


def test_the_patterns_find_real_looking_secrets():
    samples = {
        "Slack token": "xoxb-" + "123456789012-1234567890123-" + "a" * 24,
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "AWS access key": "AKIA" + "ABCDEFGHIJKLMNOP",
        "Fernet key": "AIRFLOW__CORE__FERNET_KEY=" + "a" * 43 + "=",
    }
    for what, sample in samples.items():
        assert re.search(SECRET_PATTERNS[what], sample), what
    assert not re.search(SECRET_PATTERNS["Slack token"], "xoxb-fake-0123456789-secret")


@pytest.mark.integration
def test_the_init_script_creates_the_ledger_database_and_the_admin_password_twice_over(tmp_path):
    """The Python part of airflow-init, run as the container would, against the local PostgreSQL."""
    import psycopg
    from services import PG_ADMIN, postgres_database

    code = init_python()
    with postgres_database() as scratch:
        ledger = f"{scratch}_ledger"
        env = {"SA_HYGIENE_LEDGER_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{ledger}",
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
               "_AIRFLOW_WWW_USER_USERNAME": "admin", "_AIRFLOW_WWW_USER_PASSWORD": "s3cret"}  # fmt: skip
        try:
            for _ in range(2):
                r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
            with psycopg.connect(PG_ADMIN) as conn:
                assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [ledger]).fetchone()
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{ledger}" WITH (FORCE)')
    assert json.loads((tmp_path / "passwords.json").read_text()) == {"admin": "s3cret"}
