import numpy as np
import pandas as pd
import pytest

from mlops_starter.data.demo import generate_demo_table
from mlops_starter.data.schema import FeatureSchema, encode_target
from mlops_starter.data.sources import iter_table_batches, write_batches_to_parquet
from mlops_starter.errors import DataError


def test_demo_table_is_deterministic_by_seed():
    a, b = generate_demo_table(500, seed=3), generate_demo_table(500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(generate_demo_table(500, seed=4))


def test_demo_table_has_the_traits_of_real_data(demo_frame):
    assert demo_frame["customer_id"].is_unique
    assert pd.api.types.is_datetime64_any_dtype(demo_frame["signup_date"])
    assert demo_frame.isna().any().sum() >= 3  # numeric and categorical gaps
    assert set(demo_frame["churned"]) == {"yes", "no"}
    rate = (demo_frame["churned"] == "yes").mean()
    assert 0.03 < rate < 0.07


def test_iter_table_batches_streams_a_csv_in_chunks(tmp_path, demo_frame):
    path = tmp_path / "table.csv"
    demo_frame.head(250).to_csv(path, index=False)
    sizes = [len(batch) for batch in iter_table_batches(path, chunk_rows=100)]
    assert sizes == [100, 100, 50]


def test_iter_table_batches_streams_parquet_row_groups(tmp_path, demo_frame):
    path = tmp_path / "table.parquet"
    demo_frame.head(250).to_parquet(path, index=False)
    assert [len(b) for b in iter_table_batches(path, chunk_rows=120)] == [120, 120, 10]


def test_empty_file_gets_a_clear_error(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        list(iter_table_batches(empty, 10))


def test_unknown_file_type_is_refused(tmp_path):
    sheet = tmp_path / "table.xlsx"
    sheet.write_text("x")
    with pytest.raises(DataError, match=r"table.xlsx must end in .csv or .parquet"):
        list(iter_table_batches(sheet, 10))


def test_batches_are_written_to_one_parquet_file(tmp_path, demo_frame):
    out = tmp_path / "raw.parquet"
    batches = (demo_frame.iloc[i : i + 700] for i in range(0, len(demo_frame), 700))
    rows = write_batches_to_parquet(
        batches, out, required=["churned"], drop=["region"], time_column="signup_date"
    )
    written = pd.read_parquet(out)
    assert rows == len(demo_frame) == len(written)
    assert "region" not in written.columns


def test_missing_required_column_names_it_and_writes_nothing(tmp_path, demo_frame):
    out = tmp_path / "raw.parquet"
    with pytest.raises(DataError, match=r"\['target_col'\]"):
        write_batches_to_parquet([demo_frame], out, required=["target_col"])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temp file either


def test_type_change_between_batches_names_the_column(tmp_path):
    first = pd.DataFrame({"y": [0, 1], "score": [1.0, 2.0]})
    second = pd.DataFrame({"y": [0, 1], "score": ["high", "low"]})
    with pytest.raises(DataError, match="column 'score' changes type"):
        write_batches_to_parquet([first, second], tmp_path / "raw.parquet", required=["y"])


def test_encode_target_handles_string_and_numeric_labels():
    assert encode_target(pd.Series(["Yes", "No", "Yes"], name="t"), "Yes").tolist() == [1, 0, 1]
    assert encode_target(pd.Series([0, 1, 1], name="t"), 1).tolist() == [0, 1, 1]
    assert encode_target(pd.Series([True, False], name="t"), True).tolist() == [1, 0]


def test_encode_target_names_an_absent_positive_label():
    with pytest.raises(
        DataError, match=r"positive_label 'yes' never occurs in target 't'.*\['N', 'Y'\]"
    ):
        encode_target(pd.Series(["Y", "N"], name="t"), "yes")


def test_feature_schema_infers_numeric_and_categorical(demo_frame):
    schema = FeatureSchema.infer(demo_frame, ["churned", "customer_id", "signup_date"])
    assert "tenure_months" in schema.numeric and "plan" in schema.categorical
    assert not {"churned", "customer_id", "signup_date"} & set(schema.columns)


def test_feature_schema_rejects_a_stray_timestamp(demo_frame):
    with pytest.raises(DataError, match="column 'signup_date' is a timestamp"):
        FeatureSchema.infer(demo_frame, ["churned", "customer_id"])


def test_feature_schema_honours_declared_categoricals():
    frame = pd.DataFrame({"zip": [1, 2, 3], "x": [0.1, 0.2, np.nan]})
    assert FeatureSchema.infer(frame, [], categorical=["zip"]).categorical == ["zip"]
    with pytest.raises(DataError, match=r"\['nope'\]"):
        FeatureSchema.infer(frame, [], categorical=["nope"])
