"""CSV files as people save them: separators, decimal commas, byte-order marks, Windows
code pages and quoted newlines are read right by params.yaml alone, and what cannot be
read gets one line naming the setting that would read it."""

import numpy as np
import pandas as pd
import pytest
from conftest import table_batches
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_starter.config import CsvConfig
from mlops_starter.data.csv_format import SEPARATORS, sniff_csv
from mlops_starter.data.ingest import write_batches_to_parquet
from mlops_starter.errors import DataError

TABLE = pd.DataFrame(
    {
        "customer": ["Zoë", "Müller; Söhne", 'say "hi"', "two\nlines", "plain"],
        "monthly_charges": [65.81, 1234.5, 0.25, -3.0, 88.87],
        "churned": ["yes", "no", "no", "yes", "no"],
    }
)
EXPORTS = {  # how common spreadsheet exports write a CSV
    "European Excel (; and decimal comma, cp1252)": {
        "sep": ";",
        "decimal": ",",
        "encoding": "cp1252",
    },
    "UTF-8 with a byte-order mark": {"sep": ",", "decimal": ".", "encoding": "utf-8-sig"},
    "tab-separated": {"sep": "\t", "decimal": ".", "encoding": "utf-8"},
    "Latin-1, comma": {"sep": ",", "decimal": ".", "encoding": "latin-1"},
    "pipes and decimal commas, UTF-8": {"sep": "|", "decimal": ",", "encoding": "utf-8"},
}


def read_back(path, settings=None) -> pd.DataFrame:
    return pd.concat(list(table_batches(path, 2, settings)), ignore_index=True)


@pytest.mark.parametrize("export", sorted(EXPORTS))
def test_a_spreadsheet_export_reads_as_written(tmp_path, export):
    path = tmp_path / "table.csv"
    TABLE.to_csv(path, index=False, **EXPORTS[export])
    pd.testing.assert_frame_equal(read_back(path), TABLE, check_dtype=False)
    found = sniff_csv(path, CsvConfig())
    assert (found.sep, found.decimal) == (EXPORTS[export]["sep"], EXPORTS[export]["decimal"])


def test_settings_override_what_is_sniffed(tmp_path):
    path = tmp_path / "table.csv"
    TABLE.to_csv(path, index=False, sep=";", decimal=",")
    wrong = CsvConfig(sep=",")
    with pytest.raises(DataError) as stopped:
        write_batches_to_parquet(
            table_batches(path, 10, wrong), tmp_path / "raw.parquet", ["churned"]
        )
    assert "The header was read as one column; its fields look separated by ';'" in str(
        stopped.value
    )
    assert "set data.csv.sep" in str(stopped.value)
    assert sniff_csv(path, wrong).sniffed == ("decimal", "encoding")


def test_text_that_is_not_the_named_encoding_names_the_setting(tmp_path):
    path = tmp_path / "table.csv"
    path.write_bytes(b"name,churned\n" + "Zoë,yes\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"set data\.csv\.encoding"):
        read_back(path, CsvConfig(encoding="utf-8"))
    assert read_back(path)["name"].tolist() == ["Zoë"]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.text(alphabet="abcdeéøüZ ;,|\t\"'\n", min_size=0, max_size=12).map(
                lambda t: "t" + t
            ),
            st.floats(min_value=-1e6, max_value=1e6).map(lambda x: round(x, 3)),
            st.integers(-1000, 1000),
        ),
        min_size=1,
        max_size=12,
    ),
    sep=st.sampled_from(SEPARATORS),
    comma_decimal=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1"]),
)
def test_any_table_written_any_common_way_reads_back(
    tmp_path_factory, rows, sep, comma_decimal, encoding
):
    table = pd.DataFrame(rows, columns=["text", "amount", "count"])
    decimal = "," if comma_decimal and sep != "," else "."
    path = tmp_path_factory.mktemp("csv") / "table.csv"
    table.to_csv(path, index=False, sep=sep, decimal=decimal, encoding=encoding)
    back = read_back(path)
    assert back["text"].tolist() == table["text"].tolist()
    assert np.allclose(back["amount"].astype(float), table["amount"], rtol=1e-12, atol=0)
    assert back["count"].tolist() == table["count"].tolist()
