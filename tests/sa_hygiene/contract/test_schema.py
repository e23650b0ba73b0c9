"""Key prefixes come from one table of the contract: what an Id is an Id of."""

from __future__ import annotations

import pytest

from sa_hygiene.contract.schema import PREFIX, is_id_of, object_of
from sa_hygiene.web.slack_app.items import is_opportunity_id, record_missing

pytestmark = pytest.mark.unit

OPP, ACCOUNT, TASK = "0064x00000AbCdEAAA", "0014x00000AbCdEAAA", "00T4x00000AbCdEAAA"


def test_an_id_s_object_is_read_from_the_contract_s_prefixes():
    assert is_id_of("Opportunity", OPP) and not is_id_of("Opportunity", ACCOUNT) and not is_id_of("Account", None)
    assert [object_of(i) for i in (OPP, ACCOUNT, TASK, "zzz", None)] == ["Opportunity", "Account", "Task", "", ""]
    assert object_of(TASK, ("Opportunity", "Account")) == ""
    # A custom object's prefix varies by org: an Id is never taken for one unless asked.
    assert object_of(PREFIX["Proof_of_Value__c"] + "4x00000AbCdEAAA") == ""
    assert is_opportunity_id(OPP) and not is_opportunity_id(ACCOUNT) and not is_opportunity_id("006<!channel>")


def test_a_card_s_record_is_an_opportunity_or_an_account_by_its_prefix():
    assert record_missing(None, "") is None
    assert "no such opportunity or account" in record_missing(type("S", (), {"tables": {}})(), TASK)
