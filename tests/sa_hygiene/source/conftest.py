"""The fake Salesforce org (``salesforce_org``) served over HTTPS as connection ``CONN``, and a store."""

import pytest
from fakes.salesforce import serving
from salesforce_org import CONN, org

from sa_hygiene.source.store import SnapshotStore


@pytest.fixture
def fake(ca, monkeypatch):
    with serving(ca, monkeypatch, CONN, org()) as sf:
        yield sf


@pytest.fixture
def store(tmp_path):
    return SnapshotStore(tmp_path / "store")
