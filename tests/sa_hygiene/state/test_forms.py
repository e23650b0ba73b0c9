"""Claims on Slack modal views: the first submission of a view holds it, a released claim may be
taken again, a done one never; on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from sa_hygiene.state.forms import FormSubmissions

pytestmark = pytest.mark.integration


def test_a_view_is_claimed_once_until_released(any_ledger_url):
    claims = FormSubmissions(any_ledger_url)
    try:
        assert claims.claim("V1") is True
        assert claims.claim("V1") is False  # a second submit while the first is saving
        assert claims.claim("V2") is True
        claims.release("V1")  # Salesforce refused: the form may be sent again
        assert claims.claim("V1") is True
        claims.done("V1", "00T5e0000000001AAA")
        assert claims.claim("V1") is False
    finally:
        claims.close()
