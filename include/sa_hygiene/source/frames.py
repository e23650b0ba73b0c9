"""Frame helpers shared by reading and the engine: Arrow-backed set look-ups and row selection.

pandas' ``isin`` spells a value set out as Python strings and its boolean indexing makes
Arrow concatenate whole chunked columns; these keep both at Arrow's cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def is_in(values: pd.Series, among: pd.Series) -> np.ndarray:
    """``values.isin(among)`` for text, by Arrow's hash look-up (False for blanks): pandas spells
    the value set out as Python strings first, a noticeable cost at a hundred thousand users."""
    value_set = pa.array(among.array)
    value_set = value_set.combine_chunks() if isinstance(value_set, pa.ChunkedArray) else value_set
    found = pc.is_in(pa.array(values.array), value_set=value_set.cast(pa.large_string()))
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False).astype(bool)


def positions_in(values: pd.Series, among: pd.Series) -> np.ndarray:
    """Where each text value first appears in ``among`` (-1: nowhere, or blank), by Arrow's hash
    look-up: a ``map`` through ``among`` builds a pandas index of it every time."""
    value_set = pa.array(among.array)
    value_set = value_set.combine_chunks() if isinstance(value_set, pa.ChunkedArray) else value_set
    found = pc.index_in(pa.array(values.array), value_set=value_set.cast(pa.large_string()))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def arrow_values(col: pd.Series, arrow: pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    """``arrow`` as the pandas array of ``col``'s dtype, without converting a value."""
    return pd.arrays.ArrowExtensionArray(arrow) if isinstance(col.dtype, pd.ArrowDtype) else arrow.to_pandas().array


def kept_column(col: pd.Series, keep: np.ndarray, keep_arrow: pa.Array, index: pd.Index) -> pd.Series:
    arrow = getattr(col.array, "_pa_array", None)
    if isinstance(arrow, pa.ChunkedArray):
        return pd.Series(arrow_values(col, arrow.filter(keep_arrow)), index=index, dtype=col.dtype, name=col.name)
    return pd.Series(col.array[keep], index=index, name=col.name)  # numpy-backed (to_numpy would box datetimes)


def select_rows(df: pd.DataFrame, keep: np.ndarray | pd.Series, columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of ``df`` where ``keep`` holds, index labels kept; of ``columns``, or all.

    Arrow columns are filtered chunk by chunk. pandas' boolean indexing turns the mask into
    positions, and Arrow's ``take`` of a chunked column concatenates its chunks first: a copy
    of the whole column (every description of ten million tasks) to keep a few thousand rows.
    """
    keep = np.asarray(keep, dtype=bool)
    keep_arrow, index = pa.array(keep), df.index[keep]
    return pd.DataFrame({c: kept_column(df[c], keep, keep_arrow, index) for c in (df.columns if columns is None else columns)},
                        index=index)  # fmt: skip


def without_rows(df: pd.DataFrame, bad: np.ndarray) -> pd.DataFrame:
    """``df`` (a fresh frame, with a range index) without the ``bad`` rows.

    Arrow columns keep zero-copy slices around a few bad rows instead of copying every string.
    With more than that, columns are filtered one at a time and each original is let go as
    its copy is made (``df`` is emptied): the peak is one column more than the table, not two
    tables.
    """
    positions = np.flatnonzero(bad)
    keep = ~bad
    index = pd.RangeIndex(len(df) - len(positions))
    if len(positions) > 1000:
        keep_arrow = pa.array(keep)
        return pd.DataFrame({name: kept_column(df.pop(name), keep, keep_arrow, index) for name in list(df.columns)})
    starts = np.concatenate([[0], positions + 1])
    stops = np.concatenate([positions, [len(df)]])
    spans = [(a, b - a) for a, b in zip(starts, stops, strict=True) if b > a]
    out = {}
    for name in df.columns:
        col = df[name]
        arrow = getattr(col.array, "_pa_array", None)
        if isinstance(arrow, pa.ChunkedArray):
            kept = pa.chunked_array([c for a, n in spans for c in arrow.slice(a, n).chunks], type=arrow.type)
            out[name] = pd.Series(arrow_values(col, kept), index=index, dtype=col.dtype)
        else:
            out[name] = pd.Series(col.array[keep], index=index)
    return pd.DataFrame(out)
