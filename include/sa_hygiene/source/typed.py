"""Snapshots typed once, at commit: every later read loads the frames as they were typed.

Typing and checking a snapshot (``snapshot.py``) costs several times the plain read of its
files, and every run of the day reads the same snapshot: the snapshot DAG, the report, every
DM and reminder run, the Slack app. So when a snapshot (or a version of its changes feed) is
committed, its frames are written beside the raw tables, in ``_typed/``: one Parquet table
per object with the frame's logical columns (dates ``date32``, datetimes UTC timestamps,
booleans, floats, picklists as lists, text trimmed with blanks null), the quarantine as a
table, and a manifest written last that records what they were typed with: the schema version
and a hash of the field map, the contract's catalog and the stage rules (``typing_key``), and
the size of each raw file typed.

A read whose configuration has that key loads the typed tables; anything else (a snapshot
committed before this, a changed field map, a raw file rewritten since, a folder given to
``evaluate --snapshot``) is typed from the raw tables as before, said once in the log when a
committed snapshot is the one that cannot be used. The raw tables stay: they are the
snapshot of CONTRACT.md § 1, which the changes feed and any other reader read.

A changes folder is typed the same way, but for the reference check (a change naming a User
the snapshot lacks), which needs the snapshot's tables and is made when it is applied: a
change replaces the typed rows of its record (15-character key) and its rows are appended,
exactly what applying the raw tables before typing gives (``test_typed.py`` holds the two
paths to the same frames and quarantine).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sa_hygiene.contract.config import Config
from sa_hygiene.contract.schema import OBJECTS
from sa_hygiene.source.frames import is_in, without_rows
from sa_hygiene.source.snapshot import (
    ID_RE,
    IS_DELETED,
    LOAD_ORDER,
    QUARANTINE_COLUMNS,
    REFERENCES,
    TYPED_DIR,
    Snapshot,
    SnapshotError,
    _checked,
    _find,
    _flag_references,
    _Problems,
    _read_columns,
    _read_required,
    _Stages,
    _taken_at,
    _valid_keys,
    absent_objects,
    apply_changes,
    quarantined_keys,
    read_snapshot,
)
from sa_hygiene.source.store import MANIFEST, is_local, url_to_fs

log = logging.getLogger(__name__)



QUARANTINE_TABLE = "_quarantine.parquet"


REPLACED_TABLE = "_replaced.parquet"  # a changes folder's keys of the records it replaces or deletes


# Bump when the typed tables' layout or the typing itself changes: older typed forms are retyped.
SCHEMA_VERSION = 1


def typing_key(cfg: Config) -> str:
    """What typed frames depend on besides the raw tables: the field map, the contract's catalog,
    the stage rules (rank, lost, unknown stages), the reference checks and the Id pattern."""
    spec = {
        "version": SCHEMA_VERSION,
        "fields": cfg.fields,
        "stages": cfg.stages.model_dump(mode="json"),
        "objects": {
            obj: {n: [f.kind, f.required] for n, f in fields.items()} for obj, fields in OBJECTS.items()
        },
        "load_order": LOAD_ORDER,
        "references": sorted(f"{o}.{n}>{t}" for (o, n), t in REFERENCES.items()),
        "id": ID_RE,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


# --- frames to Parquet and back -------------------------------------------------------------


def frame_table(df: pd.DataFrame) -> pa.Table:
    """A typed frame as an Arrow table: dates (naive, at midnight) stored as ``date32``."""
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is None:
            table = table.set_column(
                i, f.name, pc.cast(pc.cast(table.column(i), pa.timestamp("s")), pa.date32())
            )
    return table


def table_frame(table: pa.Table) -> pd.DataFrame:
    """The frame ``snapshot.py`` types, from its Arrow table: the same dtypes, no value parsed."""
    columns = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        t = col.type
        if pa.types.is_date32(t):
            columns[name] = pd.Series(pc.cast(col, pa.timestamp("us")).to_pandas()).astype("datetime64[us]")
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            columns[name] = pd.Series(col.to_pandas(), dtype="str")
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            columns[name] = pd.Series(pd.arrays.ArrowExtensionArray(col))
        elif pa.types.is_timestamp(t):
            columns[name] = pd.Series(col.to_pandas())
        else:  # booleans and floats: numpy, as typed
            columns[name] = pd.Series(col.to_numpy())
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def quarantine_table(quarantine: pd.DataFrame) -> pa.Table:
    return pa.table({c: pa.array([None if pd.isna(v) else str(v) for v in quarantine[c]], pa.string())
                     for c in QUARANTINE_COLUMNS})  # fmt: skip


def quarantine_frame(table: pa.Table) -> pd.DataFrame:
    """The quarantine as ``snapshot.py`` builds it (``_Problems.frame``), object by object."""
    names = table["object"].to_pylist()
    values = {c: np.asarray(table[c].to_pylist(), dtype=object) for c in QUARANTINE_COLUMNS[1:]}
    frames = [pd.DataFrame({"object": obj, **{c: v[[n == obj for n in names]] for c, v in values.items()}})
              for obj in dict.fromkeys(names)]  # fmt: skip
    return pd.concat(frames, ignore_index=True) if frames else _empty_quarantine()


def _empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})


def _write(fs, path: str, table: pa.Table) -> None:
    # zstd, as the extraction and the demo org write: Snappy made the typed tables twice the raw ones.
    with fs.open(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")


def _read(fs, path: str, columns: Collection[str] | None = None) -> pa.Table:
    """A typed table (of ``columns`` only, when given), streamed in batches as the raw tables are
    (``snapshot._read_columns``): the same chunks, and a peak of one batch's pages rather than
    a whole row group's."""
    schema = pq.read_schema(path if is_local(fs) else fs.open(path, "rb"))
    return _read_columns(fs, path, [c for c in schema.names if columns is None or c in columns])


def _sources(fs, root: str, objects) -> dict[str, list]:
    """Each object's raw file and its size: what the typed tables were typed from."""
    found = {}
    for obj in objects:
        path = _find(fs, root, obj)
        if path is not None:
            found[obj] = [path.rsplit("/", 1)[-1], fs.size(path)]
    return found


def _write_manifest(
    fs, typed: str, cfg: Config, sources: dict, rows: dict[str, int], quarantined: int
) -> None:
    manifest = {"schema_version": SCHEMA_VERSION, "typing_key": typing_key(cfg),
                "typed_at": datetime.now(UTC).isoformat(timespec="seconds"), "sources": sources, "rows": rows,
                "quarantined": quarantined}  # fmt: skip
    with fs.open(f"{typed}/{MANIFEST}", "w") as fh:
        json.dump(manifest, fh, indent=1)


def _manifest(fs, root: str) -> dict | None:
    path = f"{root}/{TYPED_DIR}/{MANIFEST}"
    if not fs.exists(path):
        return None
    with fs.open(path) as fh:
        return json.load(fh)


def _stale(fs, root: str, manifest: dict | None, cfg: Config, objects) -> str | None:
    """Why the typed form of ``root`` cannot serve ``objects`` under ``cfg`` (None: it can)."""
    if manifest is None:
        return "it was committed before snapshots were typed at commit"
    if manifest.get("typing_key") != typing_key(cfg):
        return "it was typed with another field map or schema version"
    missing = [o for o in objects if o not in manifest["rows"]]
    if missing:
        return f"its typed tables lack {', '.join(missing)}"
    now = _sources(fs, root, objects)
    changed = [o for o in objects if now.get(o) != manifest["sources"].get(o)]
    if changed:
        return f"its raw {', '.join(changed)} changed since it was typed"
    return None


# --- snapshots --------------------------------------------------------------------------------


def _write_frames(fs, root: str, frames: dict[str, pd.DataFrame], quarantine: pd.DataFrame) -> str:
    """A fresh ``_typed/`` folder under ``root`` holding ``frames`` and ``quarantine``; its path."""
    typed = f"{root}/{TYPED_DIR}"
    if fs.exists(typed):
        fs.rm(typed, recursive=True)
    fs.makedirs(typed, exist_ok=True)
    for obj, df in frames.items():
        _write(fs, f"{typed}/{obj}.parquet", frame_table(df))
    _write(fs, f"{typed}/{QUARANTINE_TABLE}", quarantine_table(quarantine))
    return typed


def write_typed(url: str, cfg: Config, snapshot: Snapshot | None = None) -> None:
    """Write the typed form of the snapshot folder at ``url`` (its tables read, typed and checked
    now unless ``snapshot`` is that reading already), manifest last."""
    fs, root = url_to_fs(url)
    if snapshot is None:
        snapshot = read_snapshot(url, cfg, typed=False)
    typed = _write_frames(fs, root, snapshot.tables, snapshot.quarantine)
    _write_manifest(fs, typed, cfg, _sources(fs, root, snapshot.tables),
                    {obj: len(df) for obj, df in snapshot.tables.items()}, len(snapshot.quarantine))  # fmt: skip


def type_at_commit(url: str, cfg: Config, changes: bool = False) -> None:
    """Type a staged snapshot (or, ``changes``, a changes version) before its commit, unless its
    typed form is there already (the snapshot DAG writes it while validating).

    A folder that cannot be typed (a missing table or column) is committed raw, as before:
    every read of it reports the same clear error that typing it did.
    """
    fs, root = url_to_fs(url)
    try:
        if changes:
            write_typed_changes(url, cfg)
        elif _stale(fs, root, _manifest(fs, root), cfg, [o for o in LOAD_ORDER if _find(fs, root, o)]):
            write_typed(url, cfg)
    except SnapshotError as exc:
        log.warning("%s: committed untyped, every read will type it: %s", url, exc)


_SAID: set[tuple[str, str]] = set()


def _say_once(root: str, why: str) -> None:
    if (root, why) not in _SAID:
        _SAID.add((root, why))
        log.info("%s: typed at read, not at commit: %s", root, why)


def read_typed(
    fs, root: str, cfg: Config, objects: tuple[str, ...] | None, delta, path: str,
    columns: Mapping[str, Collection[str]] | None = None,
) -> Snapshot | None:  # fmt: skip
    """The snapshot read from its typed tables (with ``delta``, a changes folder, applied), or
    None when they cannot serve this read and the raw tables must be typed. ``columns``:
    {object: its only columns to read}, without ``delta`` (``read_snapshot``)."""
    wanted = [o for o in LOAD_ORDER if objects is None or o in objects]
    manifest = _manifest(fs, root)
    committed = manifest is not None or fs.exists(f"{root}/{MANIFEST}")
    if not committed:
        return None  # a raw folder (evaluate --snapshot, a staged snapshot): typed at read, as always
    # A read of some objects checks their references only against the tables it reads: typed
    # tables checked against all of them would quarantine more than that read does.
    if any(src in wanted and target not in wanted for (src, _), target in REFERENCES.items()):
        return None
    why = _stale(fs, root, manifest, cfg, wanted)
    changes = None
    if why is None and delta is not None:
        changes = typed_changes(*delta, cfg)
        targets = {t for (src, _), t in REFERENCES.items() if src in wanted}
        touched = sorted(targets & set(changes.frames))
        if touched:  # changed Users can move other objects' rows into or out of the quarantine
            why = f"the changes hold {', '.join(touched)}, which other tables' references are checked against"
    if why is not None:
        _say_once(root, why)
        return None
    typed = f"{root}/{TYPED_DIR}"
    quarantine = quarantine_frame(_read(fs, f"{typed}/{QUARANTINE_TABLE}"))
    tables: dict[str, pd.DataFrame] = {}
    problems: list[pd.DataFrame] = []
    quarantined: dict[str, set[str]] = {}  # as read_snapshot keeps them, for loose references
    for obj in wanted:
        df = table_frame(_read(fs, f"{typed}/{obj}.parquet", None if delta is not None else (columns or {}).get(obj)))
        found = quarantine[quarantine["object"] == obj]
        if changes is not None and obj in changes.frames:
            df, found = changes.apply(obj, df, found, cfg, tables, quarantined)
        tables[obj] = df
        if len(found):
            problems.append(found)
            quarantined[obj] = quarantined_keys(found)
    quarantine = pd.concat(problems, ignore_index=True) if problems else _empty_quarantine()
    return Snapshot(tables=tables, quarantine=quarantine, path=path, taken_at=_taken_at(fs, root),
                    absent=absent_objects(fs, root, delta))  # fmt: skip


# --- changes folders --------------------------------------------------------------------------


@dataclass
class TypedChanges:
    """A changes folder typed and checked but for references: per object, the frame of its live
    rows, their quarantine, and the keys of every record they replace or delete."""

    frames: dict[str, pd.DataFrame]
    quarantine: dict[str, pd.DataFrame]
    replaced: dict[str, pa.Array]

    def apply(self, obj: str, df: pd.DataFrame, quarantine: pd.DataFrame, cfg: Config, tables: dict[str, pd.DataFrame],
              quarantined: dict[str, set[str]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
        """A typed table and its quarantine with this object's changes applied (CONTRACT.md § 1b)."""
        replaced = self.replaced[obj]
        if len(replaced) and len(df):
            hit = is_in(df["key"], pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([replaced]))))
            if hit.any():
                df = without_rows(df, hit)
        if len(replaced) and len(quarantine):
            # A quarantined row of a record the changes replace is gone with it, as in the raw path.
            ids = pa.array(list(quarantine["record_id"]), pa.string(), from_pandas=True)  # a blank Id: NaN
            named = pc.fill_null(pc.match_substring_regex(ids, f"^{ID_RE}$"), False)
            gone = pc.and_(named, pc.is_in(pc.utf8_slice_codeunits(ids, 0, 15), value_set=replaced))
            quarantine = quarantine[~pc.fill_null(gone, False).to_numpy(zero_copy_only=False)]
        changed, referenced = _referenced(self.frames[obj], obj, cfg, tables, quarantined or {})
        merged = pd.concat([df, changed], ignore_index=True) if len(changed) else df
        found = [q for q in (quarantine, self.quarantine[obj], referenced) if len(q)]
        return merged, (pd.concat(found, ignore_index=True) if found else _empty_quarantine())


def _referenced(
    df: pd.DataFrame, obj: str, cfg: Config, tables: dict[str, pd.DataFrame], quarantined: dict[str, set[str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Changed rows without those naming a record the snapshot lacks (moved to their quarantine)."""
    problems = _Problems(obj, len(df))
    _flag_references(problems, df, obj, cfg.fields[obj], tables, quarantined)
    quarantine = problems.frame(df["id"])
    return (without_rows(df.reset_index(drop=True), problems.bad) if problems.bad.any() else df), quarantine


def type_changes(fs, root: str, cfg: Config) -> TypedChanges:
    """Type the raw tables of a changes folder: each as ``apply_changes`` would append it to a
    snapshot (deletions left out), checked as ``snapshot.py`` checks a table, but for references."""
    stages = _Stages(cfg)
    out = TypedChanges({}, {}, {})
    for obj in LOAD_ORDER:
        path = _find(fs, root, obj)
        if path is None:
            continue
        fmap = cfg.fields[obj]
        wanted = [*dict.fromkeys(fmap.values()), IS_DELETED]
        delta = _read_required(fs, path, wanted, fmap, OBJECTS[obj])
        keys, valid = _valid_keys(delta[fmap["id"]])
        live, unreadable = apply_changes(delta.slice(0, 0).drop_columns([c for c in [IS_DELETED] if c in delta.column_names]),
                                         delta, fmap["id"])  # fmt: skip
        out.frames[obj], out.quarantine[obj] = _checked(
            path, obj, live, unreadable, cfg, stages, {}, references=False
        )
        out.replaced[obj] = pc.unique(pc.filter(keys, pa.array(valid)).combine_chunks()).cast(pa.string())
    return out


def write_typed_changes(url: str, cfg: Config) -> None:
    """Write the typed form of a changes folder beside its raw tables, manifest last."""
    fs, root = url_to_fs(url)
    changes = type_changes(fs, root, cfg)
    found = [q for q in changes.quarantine.values() if len(q)]
    quarantine = pd.concat(found, ignore_index=True) if found else _empty_quarantine()
    typed = _write_frames(fs, root, changes.frames, quarantine)
    keys = changes.replaced
    replaced = pa.table({"object": pa.array([o for o, k in keys.items() for _ in range(len(k))], pa.string()),
                         "key": pa.concat_arrays([*keys.values(), pa.array([], pa.string())])})  # fmt: skip
    _write(fs, f"{typed}/{REPLACED_TABLE}", replaced)
    _write_manifest(fs, typed, cfg, _sources(fs, root, changes.frames),
                    {obj: len(df) for obj, df in changes.frames.items()}, len(quarantine))  # fmt: skip


def typed_changes(fs, root: str, cfg: Config) -> TypedChanges:
    """A changes folder's typed form: read as written at its commit, or typed now (a folder given
    to ``--changes``, a version written before typing at commit: a day's changes, quickly typed)."""
    manifest = _manifest(fs, root)
    present = [o for o in LOAD_ORDER if _find(fs, root, o) is not None]
    if manifest is None or _stale(fs, root, manifest, cfg, present) is not None:
        return type_changes(fs, root, cfg)
    typed = f"{root}/{TYPED_DIR}"
    quarantine = quarantine_frame(_read(fs, f"{typed}/{QUARANTINE_TABLE}"))
    replaced = _read(fs, f"{typed}/{REPLACED_TABLE}")
    out = TypedChanges({}, {}, {})
    for obj in manifest["rows"]:
        out.frames[obj] = table_frame(_read(fs, f"{typed}/{obj}.parquet"))
        out.quarantine[obj] = quarantine[quarantine["object"] == obj].reset_index(drop=True)
        keys = pc.filter(replaced["key"], pc.equal(replaced["object"], obj))
        out.replaced[obj] = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    return out
