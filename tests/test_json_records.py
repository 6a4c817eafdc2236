"""Records as a client sends them: every column name intact, missing values as null."""

import numpy as np
import pandas as pd

from mlops_starter.storage import json_records


def test_records_keep_every_column_name_and_send_missing_as_null():
    """Found by the generated tables: DataFrame.to_json cut a column name at a NUL
    character, so the served smoke test sent a record the service could not match."""
    frame = pd.DataFrame(
        {"\x00lab": [1.5, np.nan], "n": pd.array([1, None], dtype="Int64"), "c": ["x", None]}
    )
    assert json_records(frame) == [
        {"\x00lab": 1.5, "n": 1, "c": "x"},
        {"\x00lab": None, "n": None, "c": None},
    ]
