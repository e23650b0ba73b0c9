"""docker-compose.yaml and .env.example read the way Docker Compose reads them, for tests.

There is no Docker engine where the tests run, so the tests check the file itself and run its
services as local processes with its environment; this module gives them the file with YAML
merge keys resolved and ``${VAR}`` interpolated from a .env-style mapping, as
``docker compose config`` would.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
# $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))")


class MissingVariable(ValueError):
    """A ``${NAME:?error}`` whose variable is not set: Compose refuses the file."""


def read_dotenv(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=value lines (comments and blank lines skipped; quotes around a value removed)."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution over every string of a parsed file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name = m["name"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op and op.endswith("?") and not present:
            raise MissingVariable(f"{name}: {arg}")
        if op and op.endswith("-") and not present:
            return arg
        return env.get(name, "")

    return _VARIABLE.sub(substitute, value)


def raw_compose() -> dict:
    """The file as YAML (merge keys resolved), before interpolation."""
    return yaml.safe_load(COMPOSE.read_text())


def required_variables() -> set[str]:
    """The variables without which Compose refuses the file (``${NAME:?error}``)."""
    return set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))


def load_compose(env: dict[str, str]) -> dict:
    """The file as Compose runs it with ``env`` as its .env."""
    return interpolate(raw_compose(), env)


def environment(service: dict) -> dict[str, str]:
    """A service's environment as strings (YAML may have parsed numbers or booleans)."""
    return {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}


def init_python() -> str:
    """The Python that the airflow-init service runs (its here-document): the ledger's database
    and the admin's password."""
    script = raw_compose()["services"]["airflow-init"]["command"][1]
    return re.search(r"<<'PY'\n(.*?)\nPY\n", script, re.S).group(1)


def init_runs_db_upgrade() -> bool:
    """Whether the airflow-init service creates the ledger's and the alert state's tables."""
    return "/entrypoint python -m sa_hygiene db-upgrade" in raw_compose()["services"]["airflow-init"]["command"][1]


def init_pools() -> list[tuple[str, int, str]]:
    """(name, slots, description) of the pools the airflow-init service creates."""
    script = raw_compose()["services"]["airflow-init"]["command"][1]
    return [(n, int(s), d) for n, s, d in re.findall(r'airflow pools set (\S+) (\d+) "([^"]*)"', script)]
