"""Any table, no traceback: generated tables (awkward names, text markers among numbers,
infinities, empty and constant columns, rare positives, the target anywhere) go through
the library function of every in-memory stage. Each ends in success or in one project
error naming what is at fault; any other exception is a bug this test exists to find.

`make test` runs a few tables; GENERATED_TABLES=2000 pytest tests/test_generated_tables.py
is the long profile, run by hand before a release. Each case it finds becomes a fixed
example in the unit tests of the module at fault."""

import os

import numpy as np
import pandas as pd
from generated import distinct_column_names
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_starter.config import Config
from mlops_starter.data.sources import write_batches_to_parquet
from mlops_starter.errors import PipelineError
from mlops_starter.evaluation.evaluate import evaluate
from mlops_starter.lineage import training_run
from mlops_starter.storage import write_bytes, write_parquet
from mlops_starter.training.split import split_table
from mlops_starter.training.train import train
from mlops_starter.validation.validate import validate_table

TABLES = int(os.environ.get("GENERATED_TABLES", "8"))
TARGET, ID = "outcome label", "record id"


@st.composite
def feature_column(draw, rows: int) -> list:
    """One feature's values, of a kind users bring."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(
        st.sampled_from(
            [
                "float",
                "int",
                "category",
                "rare_category",
                "numbers_with_markers",
                "dates_as_text",
                "all_null",
                "constant",
                "one_value",
                "huge_and_tiny",
                "infinite",
            ]
        )
    )
    if kind == "float":
        values = rng.normal(0, 1, rows).tolist()
    elif kind == "int":
        values = rng.integers(-5, 50, rows).tolist()
    elif kind == "category":
        values = rng.choice(["a", "b", "c", None], rows).tolist()
    elif kind == "rare_category":
        values = ["common"] * (rows - 1) + ["once"]
    elif kind == "numbers_with_markers":
        values = [str(round(v, 2)) for v in rng.normal(100, 10, rows)]
        for row in rng.choice(rows, max(1, rows // 6), replace=False):
            values[row] = draw(st.sampled_from(["?", "NA", "n/a", "-", ".", ""]))
    elif kind == "dates_as_text":
        days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), "D")
        form = draw(st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%m-%d-%y %H:%M"]))
        values = [d.strftime(form) for d in days]
    elif kind == "all_null":
        values = [None] * rows
    elif kind == "constant":
        values = [7.0] * rows
    elif kind == "one_value":
        values = [None] * (rows - 1) + [3.5]
    elif kind == "huge_and_tiny":
        values = (rng.normal(0, 1, rows) * 10.0 ** rng.integers(-300, 300, rows)).tolist()
    else:
        values = rng.normal(0, 1, rows).tolist()
        values[int(rng.integers(rows))] = draw(st.sampled_from([np.inf, -np.inf]))
    return values


@st.composite
def tables(draw) -> pd.DataFrame:
    rows = draw(st.integers(40, 300))
    names = [n for n in draw(distinct_column_names(8)) if n not in (TARGET, ID)] or ["x"]
    positives = draw(st.integers(3, rows // 3))
    labels = np.array(["yes"] * positives + ["no"] * (rows - positives))
    np.random.default_rng(draw(st.integers(0, 99))).shuffle(labels)
    columns = {name: draw(feature_column(rows)) for name in names}
    columns[ID] = [f"R-{i}" for i in range(rows)]
    position = draw(st.integers(0, len(columns)))
    ordered = list(columns.items())
    ordered.insert(position, (TARGET, labels.tolist()))
    return pd.DataFrame(dict(ordered))


def config(tmp_path) -> Config:
    raw = Config.from_yaml().model_dump(by_alias=True)
    raw["paths"] = {k: str(tmp_path / v) for k, v in raw["paths"].items()}
    raw["data"] |= {"target": TARGET, "positive_label": "yes", "id_column": ID, "time_column": None}
    raw["validate"] |= {
        "suite": None,
        "min_rows": 30,
        "positive_rate_min": 0.0,
        "positive_rate_max": 0.9,
    }
    raw["train"] |= {"cv_folds": 3}
    raw["train"]["candidates"]["random_forest"] |= {"n_estimators": 20}
    raw["train"]["candidates"]["xgboost"] |= {"n_estimators": 20}
    raw["evaluate"] |= {"importance_repeats": 1}
    raw["mlflow"] |= {"experiment": "generated"}
    return Config.from_dict(raw)


def run_every_stage(table: pd.DataFrame, cfg: Config) -> None:
    """ingest, validate, split, train and evaluate, as their stage scripts call them."""
    data = cfg.data
    write_batches_to_parquet(
        [table],
        cfg.paths.raw,
        [TARGET, ID],
        data.drop_columns,
        None,
        data.categorical_columns,
        data.na_values,
    )
    raw = pd.read_parquet(cfg.paths.raw)
    report = validate_table(raw, cfg)
    if not report.success:
        raise PipelineError("; ".join(report.failures))
    outcome = split_table(raw, cfg)
    if outcome.failed:
        raise PipelineError("; ".join(c.detail for c in outcome.failed))
    write_parquet(cfg.paths.train, outcome.train)
    write_parquet(cfg.paths.test, outcome.test)
    trained = train(pd.read_parquet(cfg.paths.train), cfg)
    model_file = os.path.join(cfg.paths.model_dir, "model.skops")
    write_bytes(model_file, trained.model_file)
    run = training_run(model_file, cfg.mlflow.experiment)
    evaluate(
        trained.model, trained.model_info, pd.read_parquet(cfg.paths.test), cfg, run.info.run_id
    )


@settings(
    max_examples=TABLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(table=tables())
def test_a_generated_table_trains_or_stops_with_a_project_error(tmp_path_factory, table):
    folder = tmp_path_factory.mktemp("table")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
    try:
        run_every_stage(table, config(folder))
    except PipelineError as expected:
        assert str(expected).strip()
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before
