"""Which records a changes folder touches, and which of them were deleted.

The activity posts (spec v3, "as it happens") edit a post in place when its Task changed in
Salesforce, and mark it deleted when the Task was: both are rows of the changes feed. Reading
only the Id and ``IsDeleted`` columns of one object keeps a 15-minute run from typing the whole
delta when all it needs is the handful of Ids to look at again.
"""

from __future__ import annotations

import os

import numpy as np

from sa_hygiene.contract.config import Config
from sa_hygiene.source.snapshot import IS_DELETED, _deleted, _find, _read_table, _valid_keys
from sa_hygiene.source.store import url_to_fs


def changed_records(changes: str | os.PathLike | None, cfg: Config, obj: str = "Task") -> dict[str, bool]:
    """{15-character Id key: deleted} of the ``obj`` rows in a changes folder ({} without one).

    The last row of an Id wins, as when the folder is applied over a snapshot.
    Rows without a well-formed Id name no record and are left out (the snapshot reader
    quarantines them).
    """
    if changes is None:
        return {}
    fs, root = url_to_fs(changes)
    path = _find(fs, root, obj)
    if path is None:
        return {}
    id_column = cfg.fields[obj]["id"]
    table = _read_table(fs, path, [id_column, IS_DELETED])
    if id_column not in table.column_names:
        return {}
    keys, valid = _valid_keys(table[id_column])
    deleted, _bad = _deleted(table)
    out: dict[str, bool] = {}
    for key, ok, gone in zip(keys.to_pylist(), valid, np.asarray(deleted, bool), strict=True):
        if ok:
            out[key] = bool(gone)
    return out
