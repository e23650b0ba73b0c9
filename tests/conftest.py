import os
import shutil
import tempfile

# Before anything imports great_expectations: no analytics calls from tests.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.pop("SA_HYGIENE_CONFIG", None)
# Before anything imports Airflow: a home of this test process's own (make test runs several
# processes, pytest-xdist's workers), never the user's ~/airflow nor another worker's.
AIRFLOW_HOME = tempfile.mkdtemp(prefix="sa-hygiene-tests-airflow-")
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME

import pytest  # noqa: E402
from services import postgres_database  # noqa: E402

# Modules that start Airflow or a browser first, then the other long ones (over a minute each in
# a --durations run), the pure ones last: make test hands whole modules to its workers in this
# order (--dist loadscope --no-loadscope-reorder), so that no long module starts at the end while
# the other worker has nothing left to do. Only the order depends on these; every test runs.
STAGE_ORDER = {"e2e": 0, "integration": 2, "unit": 3}
LONG_MODULES = ("pipeline/test_feed_windows.py", "engine/test_rules_properties.py", "delivery/test_slack_overlap.py",
                "pipeline/test_activity_posts.py", "engine/test_backtest.py", "source/test_snapshot_changes.py",
                "engine/test_predicates.py", "pipeline/test_reminders.py", "source/test_typed.py")  # longest first


def pytest_collection_modifyitems(items):
    def module(item):
        return item.nodeid.split("::", 1)[0]

    rank: dict[str, float] = {}
    for item in items:
        stages: list[float] = [STAGE_ORDER[m.name] for m in item.iter_markers() if m.name in STAGE_ORDER]
        if (name := module(item).removeprefix("tests/sa_hygiene/")) in LONG_MODULES:
            stages.append(1 + LONG_MODULES.index(name) / len(LONG_MODULES))  # between e2e and integration
        rank[module(item)] = min(rank.get(module(item), len(STAGE_ORDER) + 1), *stages, len(STAGE_ORDER) + 1)
    items.sort(key=lambda item: rank[module(item)])  # stable: the collection order within a rank


def pytest_unconfigure(config):
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def ca(tmp_path_factory):
    """A test certificate authority (trustme) and its bundle file, for the fake Salesforce's TLS."""
    import trustme

    authority = trustme.CA()
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    return authority, bundle


@pytest.fixture
def postgres_url():
    """A database of its own on the local PostgreSQL, dropped afterwards."""
    with postgres_database() as name:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def ledger_url(tmp_path):
    return f"sqlite:///{tmp_path}/ledger/ledger.sqlite"  # the ledger makes its folder


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ledger_url(request, ledger_url):
    """The same test on SQLite and on the local PostgreSQL."""
    return ledger_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def ledger(ledger_url):
    from sa_hygiene.state.ledger import Ledger

    ledger = Ledger(ledger_url)
    yield ledger
    ledger.close()
