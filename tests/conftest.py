import os

# Before anything imports great_expectations: no analytics calls from tests.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.pop("SA_HYGIENE_CONFIG", None)

import pytest  # noqa: E402
from services import postgres_database  # noqa: E402


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
