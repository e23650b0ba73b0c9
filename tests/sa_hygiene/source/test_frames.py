"""Frame helpers: rows selected without losing labels, dtypes or Arrow chunks."""

import pandas as pd
import pyarrow as pa
import pytest

from sa_hygiene.source.frames import select_rows

pytestmark = pytest.mark.unit


def test_select_rows_keeps_labels_dtypes_and_chunks_apart(tmp_path):
    chunked = pa.chunked_array([pa.array(["a", None]), pa.array(["c", "d"])])
    df = pd.DataFrame(
        {"text": pd.Series(chunked.to_pandas().array, index=[10, 11, 12, 13]),
         "when": pd.Series(pd.to_datetime(["2026-01-01", None, "2026-01-03", "2026-01-04"], utc=True), index=[10, 11, 12, 13]),
         "lists": pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([pa.array([["x"], []]), pa.array([["y"], ["z", "w"]])])),
                            index=[10, 11, 12, 13])},
    )  # fmt: skip
    out = select_rows(df, [False, True, True, False], ["lists", "text"])
    assert list(out.columns) == ["lists", "text"] and out.index.tolist() == [11, 12]
    assert out["text"].dtype == df["text"].dtype and out["lists"].dtype == df["lists"].dtype
    assert pd.isna(out["text"].loc[11]) and out["text"].loc[12] == "c"
    assert out["lists"].tolist() == [[], ["y"]]
    pd.testing.assert_frame_equal(select_rows(df, [True, False, False, True]), df.loc[[10, 13]])
