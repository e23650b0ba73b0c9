"""Who receives an alert (CONTRACT.md § 3): regional channels and direct messages.

A ``Directory`` indexes one snapshot's users with what routing needs of each: their region
(the first matching routing rule), its channel, whether they are active, their active manager.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.recipients import CHANNEL, USER
from sa_hygiene.source.frames import is_in


def region_keys(users: pd.DataFrame, cfg: Config) -> pd.Series:
    """Region key of each user row by the first matching routing rule; None when no rule matches."""
    key = pd.Series(None, index=users.index, dtype=object)
    for rule in cfg.routing.rules:
        match = pd.Series(True, index=users.index)
        for field, accepted in rule.when.items():
            match &= users[field].isin(accepted)
        key = key.where(key.notna() | ~match, rule.key)
    return key


class Directory:
    """The users of one snapshot, indexed by Id key, with what routing needs of each."""

    def __init__(self, users: pd.DataFrame, cfg: Config):
        self.cfg = cfg
        u = users.set_index("key", drop=False)
        self.users = u
        self.region = region_keys(u, cfg)
        self.channel = self.region.map(cfg.region_channel).where(self.region.notna(), cfg.routing.unrouted_channel)
        self.active = u["is_active"].astype(bool)
        manager_key = u["manager_id"].str.slice(0, 15)
        mgr_active = manager_key.map(self.active).fillna(False).astype(bool)
        self.manager_id = manager_key.map(u["id"]).where(mgr_active)
        self.is_sa = self.active & u["role_type"].isin(self.cfg.sa_role_types)

    def is_sa_ref(self, refs: pd.Series) -> pd.Series:
        """Whether each reference names a Solutions Architect: a set look-up (Arrow's ``is_in``),
        several times cheaper than mapping ten million owner Ids through the user index."""
        sa_keys = pd.Series(self.is_sa.index[self.is_sa.to_numpy(bool)], dtype="str")
        return pd.Series(is_in(refs.str.slice(0, 15), sa_keys), index=refs.index)

    def canonical(self, refs: pd.Series) -> pd.Series:
        """The User Id as the User table spells it (15/18-character references agree); raw when unknown."""
        mapped = refs.str.slice(0, 15).map(self.users["id"])
        return mapped.where(mapped.notna(), refs)

    def is_unrouted(self, refs: pd.Series) -> pd.Series:
        return refs.str.slice(0, 15).map(self.region).isna()

    def region_channel(self, refs: pd.Series) -> pd.Series:
        """``channel:#…`` of each referenced user's region (operations channel when unrouted)."""
        ch = refs.str.slice(0, 15).map(self.channel).fillna(self.cfg.routing.unrouted_channel)
        return CHANNEL + ch.astype(object)

    def direct(self, refs: pd.Series, fallback: pd.Series) -> pd.Series:
        """A DM to the user when active, else to their active manager, else ``fallback``."""
        keys = refs.str.slice(0, 15)
        active = keys.map(self.active).fillna(False).astype(bool)
        manager = keys.map(self.manager_id)
        out = np.where(
            active,
            USER + keys.map(self.users["id"]).astype(object),
            np.where(manager.notna(), USER + manager.astype(object), fallback.astype(object)),
        )
        out = pd.Series(out, index=refs.index, dtype=object)
        return out.where(refs.notna(), fallback)
