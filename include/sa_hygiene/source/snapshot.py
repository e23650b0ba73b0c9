"""Snapshots: reading a directory of Salesforce tables into typed frames.

A snapshot is read through the field map into frames with *logical* column names
(``schema.OBJECTS``), typed once here so that no rule ever parses a string:
dates are naive ``datetime64`` at midnight, datetimes are UTC-aware, booleans are
``bool``, numbers ``float``, multi-select picklists Arrow lists of strings, and every
record carries ``key`` (the 15-character Id prefix) so that 15- and 18-character Ids
of the same record join. Rows that cannot be trusted are moved to the quarantine
with a reason code instead of failing the run (CONTRACT.md § 1, "Bad rows").

A *changes folder* (CONTRACT.md § 1b: rows created, modified or deleted since the
snapshot, with an optional ``IsDeleted``) is applied to the raw tables before typing and
quarantine, so snapshot + changes reads exactly as a snapshot that already held them.

Where snapshots are kept and how they are committed is the store's (``store``).

Longer than ~500 lines: reading, typing, quarantine and applying changes are one pass over
each table, the contract's rules (CONTRACT.md § 1 and § 1b) tuned together for memory and
speed on ten million rows (each parser's fast path and its fallback side by side).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.schema import OBJECTS, OPTIONAL_OBJECTS, Field
from sa_hygiene.source.frames import is_in, without_rows
from sa_hygiene.source.store import MANIFEST, is_local, parse_snapshot_name, url_to_fs

ID_RE = r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?"


DATE_RE = r"\d{4}-\d{2}-\d{2}"


TRUE = {"true", "1", "yes"}


FALSE = {"false", "0", "no"}


QUARANTINE_COLUMNS = ["object", "record_id", "reason", "detail"]


# Load order matters: references are checked against tables already read.
LOAD_ORDER = ["User", "Account", "Contact", "Opportunity", "OpportunityContactRole", "Task", "Event", "Proof_of_Value__c"]
# The folder beside a snapshot's or changes window's raw tables that holds their typed form (typed.py).
TYPED_DIR = "_typed"


# (object, field) -> object it must exist in, for rules that route through it.
REFERENCES = {
    ("Opportunity", "owner_id"): "User",
    ("Opportunity", "sa"): "User",
    ("Task", "owner_id"): "User",
    ("Event", "owner_id"): "User",
    ("Proof_of_Value__c", "owner_id"): "User",
    ("Proof_of_Value__c", "opportunity_id"): "Opportunity",
}

# References that may be blank, and whose target may be a quarantined row: a POV's opportunity
# is optional (pov-opportunity complains of a blank one), and a POV whose opportunity cannot be
# read is still a POV (only the rules reading the opportunity leave it out); an Id the snapshot
# does not hold at all is a bad reference.
LOOSE_REFERENCES = {("Proof_of_Value__c", "opportunity_id")}


class SnapshotError(ValueError):
    """A snapshot that cannot be read at all: a missing file or required column."""


@dataclass
class Snapshot:
    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    path: str
    taken_at: datetime | None = None
    notes: dict[str, int] = field(default_factory=dict)
    # Optional objects (schema.OPTIONAL_OBJECTS) the snapshot has no file of: read as empty,
    # and the org is taken not to have them (no POV section in the report).
    absent: frozenset[str] = frozenset()

    def __getitem__(self, obj: str) -> pd.DataFrame:
        return self.tables[obj]


def _locate(fs, root: str, obj: str) -> str:
    for ext in ("parquet", "csv"):
        candidate = f"{root}/{obj}.{ext}"
        if fs.exists(candidate):
            return candidate
    raise SnapshotError(f"{root}/{obj}.parquet (or .csv): missing file: the snapshot has no {obj} table")


def _read_table(fs, path: str, wanted: list[str]) -> pa.Table:
    """Read the columns of ``wanted`` that exist; CSV is read all-text (we type it ourselves).

    A file that is not what its name says is a clear error naming it, not a traceback.
    """
    try:
        return _read_columns(fs, path, wanted)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
        kind = "Parquet" if path.endswith(".parquet") else "CSV"
        raise SnapshotError(f"{path}: not a readable {kind} table: {exc}") from None


# Rows per batch of a streamed Parquet read: one fewer than a power of two, so that a batch's
# buffers of fixed width (a text column's 64-bit offsets are rows + 1 of them) fill a jemalloc
# size class exactly. At 1 << 17 rows each offsets buffer was 8 bytes over 1 MiB and took the
# next class, 1.25 MiB: 310 MB of the read of ten million tasks resident for nothing.
PARQUET_BATCH_ROWS = (1 << 17) - 1


def _prefer_jemalloc() -> None:
    """Make jemalloc Arrow's allocator, unless the environment chose one (ARROW_DEFAULT_MEMORY_POOL).

    Reading and typing a snapshot frees as much as it keeps (decoded pages, raw text of dates,
    filtered columns). mimalloc, the default of recent wheels, holds on to freed pages, and a
    run's peak memory was 1.7x its frames with it and 1.5x with jemalloc, at the same speed.
    Arrays already allocated keep their own pool, so switching mid-process is safe.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or pa.default_memory_pool().backend_name == "jemalloc":
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a build without jemalloc
        pass


def _read_columns(fs, path: str, wanted: list[str]) -> pa.Table:
    if path.endswith(".parquet"):
        # Streamed in batches, not read whole: ``read_table`` holds every compressed column
        # chunk of a row group while it decodes them (a million-row group of tasks, or ten of
        # them), about half the table again at the peak; batches hold one batch's pages.
        source = path if is_local(fs) else fs.open(path, "rb")
        parquet = pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20)
        schema = parquet.schema_arrow
        columns = [c for c in wanted if c in schema.names]
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns, use_threads=True)
        return pa.Table.from_batches(list(batches), schema=pa.schema([schema.field(c) for c in columns]))
    with fs.open(path, "rb") as fh:
        head = fh.readline()
    if not head.strip():
        raise SnapshotError(f"{path}: empty file: a CSV table needs a header row")
    present = pacsv.read_csv(pa.py_buffer(head)).column_names
    cols = [c for c in wanted if c in present]
    opts = pacsv.ConvertOptions(
        include_columns=cols,
        column_types={c: pa.string() for c in cols},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    with fs.open(path, "rb") as fh:
        return pacsv.read_csv(fh, convert_options=opts, read_options=pacsv.ReadOptions(block_size=1 << 24))


# Bytes a string must start or end with to have white space to trim: ASCII controls and space,
# and the lead or continuation bytes of any non-ASCII character (Unicode white space among them).
_EDGE = np.zeros(256, dtype=bool)


_EDGE[: 0x21] = _EDGE[0x7F :] = True


def _edges(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values that may have white space at an end, empty values) of a string array, from its
    offsets and first and last bytes: no string is copied."""
    n = len(chunk)
    validity, offsets, data = chunk.buffers()
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    off = np.frombuffer(offsets, dtype=width, count=chunk.offset + n + 1)[chunk.offset :] if n else np.zeros(1, width)
    starts, stops = off[:-1], off[1:]
    lengths = stops - starts
    valid = np.ones(n, dtype=bool) if validity is None or chunk.null_count == 0 else chunk.is_valid().to_numpy(zero_copy_only=False)
    empty = valid & (lengths == 0)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    if not len(raw):
        return np.zeros(n, dtype=bool), empty
    last = len(raw) - 1  # empty values at the end point past the bytes: clipped, then masked out
    edges = _EDGE[raw[np.minimum(starts, last)]] | _EDGE[raw[np.clip(stops - 1, 0, last)]]
    return edges & valid & (lengths > 0), empty


def _clean_chunk(chunk: pa.Array) -> pa.Array:
    edge, empty = _edges(chunk)
    if edge.any():
        # A few values to trim (Salesforce trims on save): trim those, keep the rest as they are.
        trimmed = pc.utf8_trim_whitespace(chunk.filter(pa.array(edge)))
        chunk = pc.replace_with_mask(chunk, pa.array(edge), trimmed)
        empty[edge] = pc.equal(trimmed, "").to_numpy(zero_copy_only=False)
    if not empty.any():
        return chunk
    # Blank -> null through a new validity bitmap over the same offsets and bytes.
    if chunk.offset:  # a slice: its bitmap would have to start mid-byte
        return pc.if_else(pa.array(~empty), chunk, pa.scalar(None, chunk.type))
    keep = pa.array(~empty) if chunk.null_count == 0 else pc.and_(chunk.is_valid(), pa.array(~empty))
    _, offsets, data = chunk.buffers()
    return pa.Array.from_buffers(chunk.type, len(chunk), [keep.buffers()[1], offsets, data])


def _clean(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Stripped text; blank (null, empty, white space) becomes null.

    Text columns are most of a snapshot's bytes and almost all of their values are already
    clean: only the values that may need it are trimmed, blank ones become null by their
    validity bit, and clean text stays the very buffers Parquet was read into (trimming every
    value and replacing blanks copied each column twice: half of the load of ten million tasks).
    """
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        col = pc.cast(col, pa.string())
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    return pa.chunked_array([_clean_chunk(c) for c in col.chunks], type=col.type)


def _text(col: pa.ChunkedArray) -> pd.Series:
    return pd.Series(_clean(col).to_pandas(), dtype="str")


def _strict_cast(text: pa.ChunkedArray, to: pa.DataType) -> pa.ChunkedArray | None:
    """Arrow's own parser: ISO 8601 only, strict, and several times faster than pandas'.
    None when any value does not parse, and the slower path finds which."""
    try:
        return pc.cast(text, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _multi(col: pa.ChunkedArray) -> pd.Series:
    """A ';'-separated picklist as a list of trimmed, non-blank values (blank -> [])."""
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        values = pc.cast(col, pa.list_(pa.string()))
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        values = pa.ListArray.from_arrays(values.offsets, values.values)  # nulls -> []
        values = values.fill_null([]) if values.null_count else values
    else:
        # Blank text is null, split to null and read as []: values that need no trimming are
        # the lists as they are, chunk by chunk, without rebuilding them (the usual case).
        values = pc.split_pattern(_clean(pc.cast(col, pa.string())), ";")
        lists = []
        for chunk in values.chunks:
            edge, empty = _edges(pc.list_flatten(chunk))
            if edge.any() or empty.any():
                break
            lists.append(pa.ListArray.from_arrays(chunk.offsets, chunk.values))  # nulls -> []
        else:
            return pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(lists, type=pa.list_(pa.string()))))
        values = values.combine_chunks()
        values = pa.ListArray.from_arrays(values.offsets, values.values)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(values))
    parents = pc.list_parent_indices(values)
    keep = pc.not_equal(flat, "")
    flat, parents = pc.filter(flat, keep), pc.filter(parents, keep)
    counts = np.bincount(parents.to_numpy(zero_copy_only=False), minlength=len(values))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), flat)
    return pd.Series(pd.arrays.ArrowExtensionArray(lists))


def _utf8(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray | None]:
    """A binary column as text, and the mask of values that are not UTF-8 (None: all are).

    Parquet writers store text as binary when they do not know it is text; one value that
    is not UTF-8 must cost its row, not the run.
    """
    try:
        return pc.cast(col, pa.string()), None
    except pa.ArrowInvalid:
        pass
    decoded, bad = [], []
    for value in col.to_pylist():
        try:
            decoded.append(value.decode("utf-8") if value is not None else None)
            bad.append(False)
        except UnicodeDecodeError:
            decoded.append(None)
            bad.append(True)
    return pa.chunked_array([pa.array(decoded, pa.string())]), np.asarray(bad, dtype=bool)


# Python's dates, which every reader of the frames (digests, reports) converts to.
_FIRST_DAY, _DAYS = -719_162, 3_652_059  # 0001-01-01 as days since 1970-01-01; days to 9999-12-31


_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _out_of_range(col: pa.ChunkedArray) -> np.ndarray | None:
    """Mask of date or timestamp values outside years 1-9999 (None: there are none)."""
    t = col.type
    if pa.types.is_date32(t):
        ints, per_day = pc.cast(col, pa.int32()), 1
    elif pa.types.is_date64(t):
        ints, per_day = pc.cast(col, pa.int64()), _PER_DAY["ms"]
    else:
        ints, per_day = pc.cast(col, pa.int64()), _PER_DAY[t.unit]
    days = np.floor_divide(pc.fill_null(ints, 0).to_numpy(zero_copy_only=False).astype(np.int64), per_day)
    bad = (days < _FIRST_DAY) | (days >= _FIRST_DAY + _DAYS)
    return bad if bad.any() else None


def _typed(col: pa.ChunkedArray, f: Field) -> tuple[pd.Series, pd.Series | None]:
    """(typed values, mask of rows whose non-blank value could not be parsed)."""
    t = col.type
    if f.kind in ("date", "datetime") and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        far = _out_of_range(col)
        if far is not None:
            col = pc.if_else(pa.array(~far), col, pa.scalar(None, t))
            values, _ = _typed(col, f)
            return values, pd.Series(far)
    if f.kind in ("id", "ref", "text"):
        return _text(col), None
    if f.kind == "multi":
        return _multi(col), None
    if f.kind == "bool":
        if pa.types.is_boolean(t):
            return pd.Series(pc.fill_null(col, False).to_numpy(zero_copy_only=False)), None
        text = _text(col).str.lower()
        good = text.isna() | text.isin(TRUE | FALSE)
        return text.isin(TRUE).astype(bool), ~good
    if f.kind == "number":
        # NaN and infinity are no amount: bad numbers in every format (Parquet floats, or
        # CSV text such as "inf", "Infinity", "NaN" and "1e309"), never 0 or an endless IACV.
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            values = pd.Series(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False))
            given = pd.Series(pc.is_valid(col).to_numpy(zero_copy_only=False))
        else:
            text = _text(col)
            values, given = pd.to_numeric(text, errors="coerce").astype("float64"), text.notna()
        bad = given & ~np.isfinite(values.fillna(0.0))
        return values.where(~bad), given & (values.isna() | bad)
    if f.kind == "date":
        if pa.types.is_date(t) or pa.types.is_timestamp(t):
            if pa.types.is_timestamp(t) and t.tz is not None:
                col = pc.local_timestamp(col)
            values = pc.cast(pc.cast(col, pa.timestamp("s")), pa.date32())
            return pd.Series(pc.cast(values, pa.timestamp("us")).to_pandas()).astype("datetime64[us]"), None
        fast = _strict_cast(_clean(col), pa.date32())
        if fast is not None:
            return pd.Series(pc.cast(fast, pa.timestamp("us")).to_pandas()).astype("datetime64[us]"), None
        return _parse_dates(_clean(col))
    if f.kind == "datetime":
        if pa.types.is_timestamp(t):
            if t.tz is None:
                col = pc.assume_timezone(col, "UTC")
            return pd.Series(pc.cast(col, pa.timestamp("us", tz="UTC")).to_pandas()), None
        fast = _strict_cast(_clean(col), pa.timestamp("us", tz="UTC"))
        if fast is not None:
            return pd.Series(fast.to_pandas()), None
        text = _text(col)  # offsets Arrow does not read, or no offset at all (taken as UTC)
        values = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        return values.astype("datetime64[us, UTC]"), text.notna() & values.isna()
    raise AssertionError(f.kind)


def _parse_dates(text: pa.ChunkedArray) -> tuple[pd.Series, pd.Series]:
    """(dates, unparsable values) of text in which some value is not an ISO date.

    Arrow parses the values shaped ``YYYY-MM-DD``; those that do not print back as themselves
    (30 February, years before 1000) go to pandas as every value once did, a handful where
    pandas' strict parse of a million dates cost seconds.
    """
    shaped = pc.if_else(pc.fill_null(pc.match_substring_regex(text, f"^{DATE_RE}$"), False), text,
                        pa.scalar(None, text.type))  # fmt: skip
    parsed = pc.strptime(shaped, format="%Y-%m-%d", unit="s", error_is_null=True)
    same = pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), shaped), False)
    parsed = pc.cast(pc.if_else(same, parsed, pa.scalar(None, parsed.type)), pa.timestamp("us"))
    values = pd.Series(parsed.to_pandas()).astype("datetime64[us]")
    doubt = (pc.is_valid(shaped).to_numpy(zero_copy_only=False) & ~same.to_numpy(zero_copy_only=False)).astype(bool)
    if doubt.any():
        text_of = pd.Series(pc.filter(shaped, pa.array(doubt)).to_pandas(), dtype="str")
        values[doubt] = pd.to_datetime(text_of, format="%Y-%m-%d", errors="coerce").astype("datetime64[us]").to_numpy()
    given = pc.is_valid(text).to_numpy(zero_copy_only=False).astype(bool)
    return values, pd.Series(given & values.isna().to_numpy())


class _Problems:
    """The quarantine of one table: the first problem of each row, by position.

    Rows are flagged in place and the table is filtered once at the end: filtering a
    frame of Arrow columns costs a ``take`` per column, ruinous when repeated on 10M rows.
    """

    def __init__(self, obj: str, n: int):
        self.obj = obj
        self.bad = np.zeros(n, dtype=bool)
        self.found: list[tuple[np.ndarray, str, np.ndarray | str]] = []  # (positions, reason, detail)

    def flag(self, mask, reason: str, detail: pd.Series | Callable[[np.ndarray], pd.Series] | str) -> None:
        """Flag the rows of ``mask`` not flagged yet. ``detail``: one text, per-row texts, or a
        function of the flagged positions giving theirs (so that a clean column of ten million
        references never spells out ten million sentences)."""
        mask = np.asarray(mask, dtype=bool) & ~self.bad
        if mask.any():
            self.bad |= mask
            at = np.flatnonzero(mask)
            if callable(detail):
                detail = detail(at)
            elif isinstance(detail, pd.Series):
                detail = detail.iloc[at]
            self.found.append((at, reason, detail if isinstance(detail, str) else np.asarray(detail, dtype=object)))

    def frame(self, ids: pd.Series) -> pd.DataFrame:
        n = len(self.bad)
        reason, detail = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
        for at, why, text in self.found:
            reason[at], detail[at] = why, text
        bad = self.bad
        return pd.DataFrame(
            {
                "object": self.obj,
                "record_id": ids[bad].astype(object).where(ids[bad].notna(), None).to_numpy(),
                "reason": reason[bad],
                "detail": detail[bad],
            }
        )


def _load_object(
    fs, root: str, obj: str, cfg: Config, stages: _Stages, tables: dict[str, pd.DataFrame],
    changes: tuple[fsspec.AbstractFileSystem, str] | None = None, quarantined: dict[str, set[str]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """One object's frame and its quarantine: read (with its changes applied), type, then flag
    rows in the order of their worst problem (the Id, a twin, a value, a reference)."""
    fmap = cfg.fields[obj]
    catalog = OBJECTS[obj]
    wanted = list(dict.fromkeys(fmap.values()))
    if obj in OPTIONAL_OBJECTS and _find(fs, root, obj) is None:
        # An org without the object: no rows (its changes, if any, still apply), no error.
        path = f"{root}/{obj}"
        table = pa.table({api: pa.array([], pa.string()) for api in wanted})
    else:
        path = _locate(fs, root, obj)
        table = _read_required(fs, path, wanted, fmap, catalog)
    bad_deleted = None
    if changes is not None:
        delta_path = _find(*changes, obj)
        if delta_path is not None:
            delta = _read_required(changes[0], delta_path, [*wanted, IS_DELETED], fmap, catalog)
            table, bad_deleted = apply_changes(table, delta, fmap["id"])
    return _checked(path, obj, table, bad_deleted, cfg, stages, tables, quarantined=quarantined)


def _checked(path: str, obj: str, table: pa.Table, bad_deleted: np.ndarray | None, cfg: Config, stages: _Stages,
             tables: dict[str, pd.DataFrame], references: bool = True,
             quarantined: dict[str, set[str]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """One object's raw table typed and checked: its frame and its quarantine. ``references=False``
    leaves the reference check to the caller (a typed changes feed checks it when applied);
    ``quarantined``: the keys quarantined so far by object (a loose reference may name them)."""
    fmap = cfg.fields[obj]
    catalog = OBJECTS[obj]
    n = table.num_rows
    raw = {name: table.column(name) for name in table.column_names}
    del table  # the raw columns go one by one as they are typed (_typed_frame)
    df, invalid, bad_text = _typed_frame(path, raw, n, fmap, catalog)
    ids = df["id"]
    problems = _Problems(obj, n)

    # 0. Text that is not text (binary Parquet columns): read as blank, so say why first.
    for name, mask in bad_text.items():
        problems.flag(mask, "bad_text", f"{fmap[name]} is not UTF-8 text")

    # 1. Ids: blank or malformed rows cannot be keyed at all.
    blank = ids.isna().to_numpy()
    problems.flag(blank, "blank_id", "the Id is blank")
    problems.flag(~blank & ~ids.str.fullmatch(ID_RE).fillna(False).to_numpy(bool), "malformed_id", "not a 15- or 18-character Id")
    df.insert(1, "key", ids.str.slice(0, 15))
    if bad_deleted is not None:  # a change that is neither clearly deleted nor clearly live
        problems.flag(bad_deleted, "bad_boolean", f"{IS_DELETED} cannot be read as a bool")

    # 2. Duplicates: the latest SystemModstamp wins (file order breaks ties: the later row wins).
    problems.flag(_superseded(df, ~problems.bad), "duplicate_id", "another row with this Id has a later SystemModstamp")

    # 3. Values that do not parse, in field order: a row is quarantined for its first problem.
    kinds = {"date": "bad_date", "datetime": "bad_datetime", "bool": "bad_boolean", "number": "bad_number"}
    for name, mask in invalid.items():
        kind = catalog[name].kind
        problems.flag(mask.to_numpy(), kinds[kind], f"{fmap[name]} cannot be read as a {kind}")
    if obj == "Opportunity":
        problems.flag((df["iacv"] < 0).to_numpy(), "negative_iacv", f"{fmap['iacv']} is negative")
        rank, lost = stages.classify(df)
        problems.flag((rank.isna() & ~lost).to_numpy(), "unknown_stage",
                      lambda at: f"{fmap['stage']} is not a known stage: " + df["stage"].iloc[at].fillna("(blank)"))
        df["iacv"] = df["iacv"].fillna(0.0)
        df["rank"] = rank
        df["lost"] = lost
    if obj == "Proof_of_Value__c":
        known = cfg.proofs_of_value.statuses
        problems.flag((~df["status"].isin(known)).to_numpy(), "unknown_status",
                      lambda at: f"{fmap['status']} is not a known status: " + df["status"].iloc[at].fillna("(blank)"))

    # 4. References routing needs (the referenced tables are read first).
    if references:
        _flag_references(problems, df, obj, fmap, tables, quarantined or {})

    bad = problems.bad
    quarantine = problems.frame(ids)
    if bad.any():
        df = without_rows(df, bad)
    return df, quarantine


def _typed_frame(path: str, raw: dict[str, pa.ChunkedArray], n: int, fmap: dict[str, str], catalog: dict[str, Field],
                 ) -> tuple[pd.DataFrame, dict[str, pd.Series], dict[str, np.ndarray]]:  # fmt: skip
    """(frame, {field: rows whose value did not parse}, {field: rows whose text is not UTF-8}).

    Each raw column is let go (popped from ``raw``) once its last field is typed: text keeps its
    buffers, but the text of dates and times would otherwise stay beside their typed values to
    the end.
    """
    uses = {api: sum(fmap[name] == api for name in catalog) for api in raw}
    columns: dict[str, pd.Series] = {}
    invalid: dict[str, pd.Series] = {}
    bad_text: dict[str, np.ndarray] = {}
    for name, f in catalog.items():
        api = fmap[name]
        col = raw[api] if api in raw else pa.chunked_array([pa.nulls(n, pa.string())])
        if api in raw:
            uses[api] -= 1
            if not uses[api]:
                del raw[api]
        if pa.types.is_nested(col.type) and not (f.kind == "multi" and pa.types.is_list(col.type)):
            raise SnapshotError(f"{path}: column {api} holds {col.type} values, not {f.kind} values")
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type) or pa.types.is_fixed_size_binary(col.type):
            col, not_utf8 = _utf8(col)
            if not_utf8 is not None:
                bad_text[name] = not_utf8
        try:
            values, bad_values = _typed(col, f)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SnapshotError(f"{path}: column {api} ({col.type}) cannot be read as {f.kind} values: {exc}") from None
        columns[name] = values.reset_index(drop=True)
        if bad_values is not None:
            invalid[name] = bad_values.reset_index(drop=True).fillna(False).astype(bool)
    del col, values
    df = pd.DataFrame(columns)
    del columns  # the frame holds them now; without_rows may let each go
    return df, invalid, bad_text


def _superseded(df: pd.DataFrame, keyed: np.ndarray) -> np.ndarray:
    """Rows whose Id another keyed row shares with a later SystemModstamp (file order breaks ties).

    Arrow counts distinct keys several times faster than pandas finds duplicates: the twins are
    looked for only when there are some, and only they are sorted (a handful, where sorting the
    table would be O(n log n)). Keys of bad-Id rows do not count: a malformed Id clashes with nothing.
    """
    n = len(df)
    keys = df["key"].array.__arrow_array__()
    losers = np.zeros(n, dtype=bool)
    counts = pc.value_counts(pc.filter(keys, pa.array(keyed)))
    shared = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if not len(shared):
        return losers
    twins = keyed & pc.is_in(keys, value_set=shared).to_numpy(zero_copy_only=False)
    if twins.any():
        stamp = df["system_modstamp"] if "system_modstamp" in df else pd.Series(pd.NaT, index=df.index)
        order = pd.DataFrame({"key": df["key"], "stamp": stamp, "pos": np.arange(n)})[twins]
        order = order.sort_values(["stamp", "pos"], na_position="first")
        losers[order["pos"][order["key"].duplicated(keep="last")].to_numpy()] = True
    return losers


def _flag_references(problems: _Problems, df: pd.DataFrame, obj: str, fmap: dict[str, str],
                     tables: dict[str, pd.DataFrame], quarantined: dict[str, set[str]]) -> None:  # fmt: skip
    """Rows naming a User (or another table read before) that the snapshot does not hold."""
    for (source, name), target in REFERENCES.items():
        if source != obj or target not in tables:
            continue
        ref = df[name]
        known = tables[target]["key"]
        if (source, name) in LOOSE_REFERENCES:
            known = pd.concat([known, pd.Series(sorted(quarantined.get(target, ())), dtype="str")], ignore_index=True)
        missing_ref = ~is_in(ref.str.slice(0, 15), known)
        if name == "sa" or (source, name) in LOOSE_REFERENCES:
            # A blank owner is a missing reference too; a blank SA is just "no SA".
            missing_ref &= ref.notna().to_numpy()
        problems.flag(missing_ref, "missing_reference",
                      lambda at, ref=ref, api=fmap[name], target=target:
                      f"{api} " + ref.iloc[at].fillna("(blank)") + f" is not a {target} of the snapshot")


def _find(fs, root: str, obj: str) -> str | None:
    try:
        return _locate(fs, root, obj)
    except SnapshotError:
        return None


def _read_required(fs, path: str, wanted: list[str], fmap: dict[str, str], catalog: dict[str, Field]) -> pa.Table:
    table = _read_table(fs, path, wanted)
    missing = [fmap[n] for n, f in catalog.items() if f.required and fmap[n] not in table.column_names]
    if missing:
        raise SnapshotError(f"{path}: missing required column(s): {', '.join(missing)}")
    return table


IS_DELETED = "IsDeleted"


def _valid_keys(ids: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """(15-character keys, mask of well-formed Ids): only a well-formed Id names a record."""
    text = pc.fill_null(_clean(ids), "")
    valid = pc.match_substring_regex(text, f"^{ID_RE}$").to_numpy(zero_copy_only=False).astype(bool)
    return pc.utf8_slice_codeunits(text, 0, 15), valid


def _as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A typed column as the text a CSV snapshot would hold, for concatenating with a text column.

    Every result reads back as the same typed value (``_typed``): dates as ``YYYY-MM-DD``,
    datetimes with their ``Z``, booleans ``true``/``false``, picklists ``;``-joined.
    """
    t = col.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pc.binary_join(pc.cast(col, pa.list_(pa.string())), ";")
    return pc.cast(col, pa.string())


def _deleted(delta: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose IsDeleted is true, rows whose IsDeleted is neither true, false nor blank)."""
    n = delta.num_rows
    if IS_DELETED not in delta.column_names:
        return np.zeros(n, bool), np.zeros(n, bool)
    col = delta[IS_DELETED]
    if pa.types.is_boolean(col.type):
        return pc.fill_null(col, False).to_numpy(zero_copy_only=False).astype(bool), np.zeros(n, bool)
    text = pc.fill_null(pc.utf8_lower(_clean(col)), "")
    true = pc.is_in(text, value_set=pa.array(sorted(TRUE))).to_numpy(zero_copy_only=False).astype(bool)
    known = pc.is_in(text, value_set=pa.array(sorted(FALSE | {""}))).to_numpy(zero_copy_only=False).astype(bool)
    return true, ~(true | known)


def _drop_rows(table: pa.Table, drop: np.ndarray) -> pa.Table:
    """``table`` without the ``drop`` rows: zero-copy slices around a few (a day's changes
    against ten million tasks), where a filter would copy every string."""
    positions = np.flatnonzero(drop)
    if len(positions) > 1000:
        return table.filter(pa.array(~drop))
    starts = np.concatenate([[0], positions + 1])
    stops = np.concatenate([positions, [table.num_rows]])
    pieces = [table.slice(a, b - a) for a, b in zip(starts, stops, strict=True) if b > a]
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


def apply_changes(base: pa.Table, delta: pa.Table, id_column: str) -> tuple[pa.Table, np.ndarray]:
    """The raw table of a snapshot with a changes table applied (CONTRACT.md § 1b).

    A change replaces every base row of the same record whole (an 18-character Id and its
    15-character prefix name one record), a new Id is appended, and an ``IsDeleted`` change
    removes the record. Changes that name no record (a blank or malformed Id) are appended as
    they are, to be quarantined like any bad row. Returns the table and the mask of its rows
    whose ``IsDeleted`` is unreadable (to be quarantined: we cannot tell whether they exist).

    Applied before typing so that the result is exactly the table of a snapshot that already
    held the changes; a column typed differently on the two sides (Parquet against CSV) is
    joined as text, which types back to the same values.
    """
    deleted, unreadable = _deleted(delta)
    delta_keys, delta_valid = _valid_keys(delta[id_column])
    replaced = pc.filter(delta_keys, pa.array(delta_valid))
    if len(replaced) and base.num_rows:
        base_text = pc.fill_null(_clean(base[id_column]), "")
        hit = pc.is_in(pc.utf8_slice_codeunits(base_text, 0, 15), value_set=pc.unique(replaced))
        hit = hit.to_numpy(zero_copy_only=False).astype(bool)
        if hit.any():  # a malformed base Id is never "the same record", even with a matching prefix
            hit[hit] = pc.match_substring_regex(pc.filter(base_text, pa.array(hit)), f"^{ID_RE}$").to_numpy(
                zero_copy_only=False).astype(bool)  # fmt: skip
            base = _drop_rows(base, hit)
    keep = ~(deleted & delta_valid)
    delta = delta.filter(pa.array(keep))
    unreadable = unreadable[keep]
    names = list(dict.fromkeys([*base.column_names, *(c for c in delta.column_names if c != IS_DELETED)]))
    columns = {}
    for name in names:
        left = base[name] if name in base.column_names else None
        right = delta[name] if name in delta.column_names else None
        if left is None:
            left = pa.chunked_array([pa.nulls(base.num_rows, right.type)])
        if right is None:
            right = pa.chunked_array([pa.nulls(delta.num_rows, left.type)])
        if left.type != right.type:
            left, right = _as_text(left), _as_text(right)
        columns[name] = pa.chunked_array(left.chunks + right.chunks, type=left.type)
    merged = pa.table(columns)
    return merged, np.concatenate([np.zeros(base.num_rows, bool), unreadable])


class _Stages:
    """StageName -> rank (0-8) and the lost flag, as WORKFLOWS.md § Terms defines them."""

    def __init__(self, cfg: Config):
        self.pattern = re.compile(cfg.stages.rank_pattern)
        self.won = set(cfg.stages.won)
        self.lost = set(cfg.stages.lost)

    def classify(self, df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        stage = df["stage"]
        digits = stage.str.extract(self.pattern, expand=False)
        rank = pd.to_numeric(digits, errors="coerce")
        rank = rank.where(~stage.isin(self.won), 8.0)
        lost = stage.isin(self.lost).astype(bool) | (df["is_closed"] & ~df["is_won"])
        rank = rank.where(~lost)
        return rank.astype("float64"), lost


# What the change workflows need of the snapshot before the current one.
PREVIOUS_OBJECTS = ("User", "Opportunity")


def read_snapshot(
    path: str | os.PathLike, cfg: Config, objects: tuple[str, ...] | None = None,
    changes: str | os.PathLike | None = None, *, typed: bool = True,
    columns: Mapping[str, Collection[str]] | None = None,
) -> Snapshot:  # fmt: skip
    """Read the tables of the snapshot at ``path`` (a folder or fsspec URL): all, or ``objects``.

    ``changes`` names a changes folder (CONTRACT.md § 1b) applied to the raw tables first;
    its objects outside the data contract (``EventRelation``, ``Lead``) are not read, as the
    snapshot's own are not: the feed writes the ``Event`` rows whose attendees changed.

    A snapshot committed typed (``typed.py``) with the running configuration is read as it was
    typed, not typed again; ``typed=False`` types the raw tables whatever the folder holds.

    ``columns`` ({object: columns}) leaves the other columns of those objects unread, for a
    reader that knows what it needs (the backtest reads a month of tasks): a speed-up of the
    typed read only, without ``changes``. A folder typed at read is typed whole (its checks
    read every column), so a reader gets the columns it asked for, and may get more.
    """
    fs, root = url_to_fs(path)
    if not fs.isdir(root):
        raise SnapshotError(f"{path}: no such snapshot directory")
    delta = None
    if changes is not None:
        delta = url_to_fs(changes)
        if not delta[0].isdir(delta[1]):
            raise SnapshotError(f"{changes}: no such changes directory")
        feed = (*LOAD_ORDER, "EventRelation", "Lead")
        # An empty window is fine (nothing changed then), also once its typed form is written beside it.
        entries = [e for e in delta[0].ls(delta[1], detail=False) if e.rstrip("/").rsplit("/", 1)[-1] != TYPED_DIR]
        if entries and not any(_find(*delta, obj) is not None for obj in feed):
            # The feed's root or another folder (an empty window is fine: nothing changed then);
            # applying nothing silently would look like no change.
            raise SnapshotError(f"{changes}: no changes tables here (none of {', '.join(feed)}): give one window's "
                                "folder of the changes feed (the one holding those tables), not the feed's root")  # fmt: skip
    _prefer_jemalloc()
    if typed:
        from sa_hygiene.source.typed import read_typed

        committed = read_typed(fs, root, cfg, objects, delta, str(path), columns)
        if committed is not None:
            return committed
    stages = _Stages(cfg)
    tables: dict[str, pd.DataFrame] = {}
    problems: list[pd.DataFrame] = []
    quarantined: dict[str, set[str]] = {}  # keys of the rows quarantined so far, by object
    absent = absent_objects(fs, root, delta)
    for obj in [o for o in LOAD_ORDER if objects is None or o in objects]:
        tables[obj], found = _load_object(fs, root, obj, cfg, stages, tables, delta, quarantined)
        if len(found):
            problems.append(found)
            quarantined[obj] = quarantined_keys(found)
    quarantine = (
        pd.concat(problems, ignore_index=True)
        if problems
        else pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})
    )
    return Snapshot(tables=tables, quarantine=quarantine, path=str(path), taken_at=_taken_at(fs, root), absent=absent)


def absent_objects(fs, root: str, delta: tuple | None) -> frozenset[str]:
    """The optional objects (``OPTIONAL_OBJECTS``) neither the snapshot nor its changes hold a file
    of: the org is taken not to have them."""
    return frozenset(o for o in OPTIONAL_OBJECTS if _find(fs, root, o) is None and (delta is None or _find(*delta, o) is None))


def quarantined_keys(found: pd.DataFrame) -> set[str]:
    """The 15-character keys of a quarantine's rows that have a well-formed Id (what a loose
    reference, ``LOOSE_REFERENCES``, may still name)."""
    return {str(r)[:15] for r in found["record_id"] if isinstance(r, str) and re.fullmatch(ID_RE, r)}


def _taken_at(fs, root: str) -> datetime | None:
    manifest = f"{root}/{MANIFEST}"
    if fs.exists(manifest):
        with fs.open(manifest) as fh:
            return datetime.fromisoformat(json.load(fh)["taken_at"])
    return parse_snapshot_name(root.rsplit("/", 1)[-1])
