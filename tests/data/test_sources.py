"""One reader per kind of table (data/sources.py): ingest and `mlops score` read a file
the same way, whatever its CSV dialect and missing-value markers, and a team's own kind
of file is one module named in params.yaml `extensions`."""

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_starter.config import Config, DataConfig
from mlops_starter.data.csv_format import SEPARATORS
from mlops_starter.data.demo import generate_demo_table
from mlops_starter.data.ingest import ingest
from mlops_starter.data.sources import FILE_SOURCES, open_table
from mlops_starter.errors import ConfigError, DataError
from mlops_starter.serving.batch import _as_columns

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SOURCE = ROOT / "docs/examples/jsonl_source.py"
DATA = DataConfig(target="churned", positive_label="yes")
PROFILE = {
    "monthly_charges": {"kind": "float", "nullable": True},
    "tenure_months": {"kind": "float", "nullable": True},
    "plan": {"kind": "category", "nullable": True},
}


def table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "monthly_charges": rng.normal(60, 20, rows).round(2),
            "tenure_months": rng.integers(1, 72, rows).astype(float),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "churned": rng.choice(["yes", "no"], rows),
        }
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sep=st.sampled_from(SEPARATORS),
    comma_decimal=st.booleans(),
    marker=st.sampled_from(DATA.na_values),
    seed=st.integers(0, 10_000),
)
def test_mlops_score_reads_each_cell_as_ingest_does(tmp_path, sep, comma_decimal, marker, seed):
    """A CSV in any dialect, with a missing-value marker in its numbers and its text:
    the scorer's columns hold what ingest wrote, and no marker counts as a wrong type."""
    decimal = "," if comma_decimal and sep != "," else "."
    frame = table(60, seed)
    # Numbers as a spreadsheet writes them in this dialect (pandas' to_csv would not put
    # a decimal comma in a column that also holds text).
    frame["monthly_charges"] = [f"{v:.2f}".replace(".", decimal) for v in frame["monthly_charges"]]
    frame.loc[[3, 17], "monthly_charges"] = marker
    frame.loc[[5], "plan"] = marker
    path = tmp_path / f"t{seed}.csv"
    frame.to_csv(path, sep=sep, decimal=decimal, index=False)
    raw = tmp_path / f"raw{seed}.parquet"
    ingest(DataConfig(target="churned", positive_label="yes", source=str(path)), raw)
    ingested = pd.read_parquet(raw)

    source = open_table(path, DATA)
    issues: Counter[str] = Counter()
    [chunk] = source.batches(source.columns(), 1000)
    columns = _as_columns(chunk, PROFILE, issues, DATA.na_values)
    assert not +issues, issues
    for name in ("monthly_charges", "tenure_months"):
        np.testing.assert_array_equal(columns[name], ingested[name].to_numpy(dtype=float))
    plan = ingested["plan"].astype(object).where(ingested["plan"].notna(), None)
    assert list(columns["plan"]) == list(plan)


@pytest.fixture
def team_params(tmp_path):
    """A project folder whose params.yaml names a team module, copied from the docs'
    example, that registers .jsonl files: nothing under src/ knows about it."""
    shutil.copy(EXAMPLE_SOURCE, tmp_path / "team_jsonl.py")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["extensions"] = ["team_jsonl"]
    params["data"]["source"] = str(tmp_path / "customers.jsonl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    yield tmp_path / "params.yaml"
    FILE_SOURCES.pop(".jsonl", None)


def test_a_team_source_from_outside_src_is_read_as_a_file_of_the_same_rows(team_params, tmp_path):
    rows = generate_demo_table(300, 1)
    rows.to_json(tmp_path / "customers.jsonl", orient="records", lines=True, date_format="iso")
    rows.to_parquet(tmp_path / "customers.parquet")
    cfg = Config.from_yaml(team_params)
    assert ingest(cfg.data, tmp_path / "from_jsonl.parquet") == len(rows)
    parquet = cfg.data.model_copy(update={"source": str(tmp_path / "customers.parquet")})
    ingest(parquet, tmp_path / "from_parquet.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "from_jsonl.parquet"),
        pd.read_parquet(tmp_path / "from_parquet.parquet"),
    )
    with pytest.raises(DataError, match=r"not JSON Lines"):
        (tmp_path / "broken.jsonl").write_text("{not json\n")
        open_table(tmp_path / "broken.jsonl", cfg.data).columns()


def test_a_suffix_with_no_reader_names_those_there_are(tmp_path):
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"t\.xlsx must end in \.csv or \.parquet or \.pq"):
        open_table(tmp_path / "t.xlsx", DATA)


def test_an_extension_that_is_missing_or_broken_is_named(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["extensions"] = ["no_such_team_module"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"extensions: no module 'no_such_team_module'"):
        Config.from_yaml(tmp_path / "params.yaml")
    (tmp_path / "team_broken.py").write_text("import no_such_dependency_xyz\n")
    params["extensions"] = ["team_broken"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"importing 'team_broken' failed: .*no_such_dependency"):
        Config.from_yaml(tmp_path / "params.yaml")


def test_a_csv_line_with_too_many_fields_stops_naming_the_file_and_row(tmp_path):
    """A shifted row (an unquoted separator in a text field) is an error, not a row
    whose first fields are read, whichever columns are asked for."""
    path = tmp_path / "shifted.csv"
    path.write_text("plan,monthly_charges,churned\nbasic,10.5,no\npro, plus,20.0,yes\n")
    source = open_table(path, DATA)
    with pytest.raises(DataError, match=r"shifted\.csv could not be read past row 0"):
        list(source.batches(["plan", "churned"], 10))
