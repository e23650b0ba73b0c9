"""Who receives an alert (CONTRACT.md § 3): regional channels and direct messages.

A ``Directory`` indexes one snapshot's users with what routing needs of each: their region
(the first matching routing rule), its channel, whether they are active, their active manager.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.recipients import CHANNEL, USER
from sa_hygiene.source.frames import arrow_values, is_in


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
        # What the column-wise look-ups below read, one entry per user and one last for an
        # unknown reference (position -1): a hundred thousand owners are looked up by position.
        self._keys = pa.array(u.index.to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
        self._ids = pa.array(u["id"].to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
        self._known_region = np.append(self.region.notna().to_numpy(bool), False)
        unrouted = cfg.routing.unrouted_channel
        self._channels = np.append(self.channel.fillna(unrouted).to_numpy(dtype=object), unrouted)
        self._active = np.append(self.active.to_numpy(bool), False)
        self._user_ids = np.append(u["id"].to_numpy(dtype=object), None)
        self._managers = np.append(self.manager_id.to_numpy(dtype=object), None)

    def _positions(self, refs: pd.Series) -> pa.Array:
        """The User row each reference names (by its 15-character key), null when none."""
        arrow = getattr(refs.array, "_pa_array", None)
        if not isinstance(arrow, pa.ChunkedArray):
            arrow = pa.array(refs.to_numpy(dtype=object), from_pandas=True)
        arrow = arrow.cast(pa.large_string()) if arrow.type != pa.large_string() else arrow
        return pc.index_in(pc.utf8_slice_codeunits(arrow, 0, 15), value_set=self._keys)

    def _at(self, refs: pd.Series) -> np.ndarray:
        """``_positions`` as NumPy positions, -1 (the last entry of each array) when unknown."""
        return pc.fill_null(self._positions(refs), -1).to_numpy().astype(np.int64, copy=False)

    def is_sa_ref(self, refs: pd.Series) -> pd.Series:
        """Whether each reference names a Solutions Architect: a set look-up (Arrow's ``is_in``),
        several times cheaper than mapping ten million owner Ids through the user index."""
        sa_keys = pd.Series(self.is_sa.index[self.is_sa.to_numpy(bool)], dtype="str")
        return pd.Series(is_in(refs.str.slice(0, 15), sa_keys), index=refs.index)

    def canonical(self, refs: pd.Series) -> pd.Series:
        """The User Id as the User table spells it (15/18-character references agree); raw when unknown."""
        arrow = getattr(refs.array, "_pa_array", None)
        if not isinstance(refs.dtype, pd.StringDtype) or not isinstance(arrow, pa.ChunkedArray):
            mapped = refs.str.slice(0, 15).map(self.users["id"])
            return mapped.where(mapped.notna(), refs)
        ids = self._ids.take(self._positions(refs))
        return pd.Series(arrow_values(refs, pc.coalesce(ids, arrow.cast(pa.large_string()))), index=refs.index, name=refs.name)

    def is_unrouted(self, refs: pd.Series) -> pd.Series:
        return pd.Series(~self._known_region[self._at(refs)], index=refs.index)

    def region_channel(self, refs: pd.Series) -> pd.Series:
        """``channel:#…`` of each referenced user's region (operations channel when unrouted)."""
        return pd.Series(CHANNEL + self._channels[self._at(refs)], index=refs.index, dtype=object)

    def direct(self, refs: pd.Series, fallback: pd.Series) -> pd.Series:
        """A DM to the user when active, else to their active manager, else ``fallback``."""
        at = self._at(refs)
        out = fallback.to_numpy(dtype=object).copy()
        manager = self._managers[at]
        to_manager = pd.notna(manager) & refs.notna().to_numpy(bool)
        out[to_manager] = USER + manager[to_manager]
        active = self._active[at] & refs.notna().to_numpy(bool)
        ids = self._user_ids[at]
        out[active] = [USER + i if isinstance(i, str) else np.nan for i in ids[active]]
        return pd.Series(out, index=refs.index, dtype=object)
