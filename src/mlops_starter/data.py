"""Where the table comes from: the built-in demo generator or a user's CSV/Parquet file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_starter.errors import DataError
from mlops_starter.storage import atomic_path

DEMO_TARGET = "churned"
DEMO_POSITIVE_LABEL = "yes"
DEMO_ID = "customer_id"
DEMO_TIME = "signup_date"
_DEMO_START = pd.Timestamp("2023-01-01")
_DEMO_SPAN_DAYS = 730


def _demo_features(n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
    days = rng.integers(0, _DEMO_SPAN_DAYS, n_rows)
    signup = _DEMO_START + pd.to_timedelta(days, unit="D")
    plan = rng.choice(["basic", "standard", "premium"], n_rows, p=[0.5, 0.35, 0.15])
    base_charge = pd.Series(plan).map({"basic": 30.0, "standard": 60.0, "premium": 95.0}).to_numpy()
    frame = pd.DataFrame(
        {
            DEMO_ID: [f"C{i:07d}" for i in rng.permutation(n_rows) + 1],
            DEMO_TIME: signup,
            "tenure_months": rng.integers(1, 73, n_rows),
            "monthly_charges": np.round(base_charge + rng.normal(0, 8, n_rows), 2),
            "support_calls": rng.poisson(1.2, n_rows),
            "data_usage_gb": np.round(rng.lognormal(2.5, 0.8, n_rows), 2),
            "age": rng.integers(18, 81, n_rows).astype(float),
            "plan": plan,
            "contract": rng.choice(
                ["month-to-month", "one-year", "two-year"], n_rows, p=[0.55, 0.25, 0.2]
            ),
            "region": rng.choice(["north", "south", "east", "west"], n_rows),
            "payment_method": rng.choice(
                ["card", "bank-transfer", "e-check", "paper-check"],
                n_rows,
                p=[0.4, 0.25, 0.25, 0.1],
            ).astype(object),
        }
    )
    frame.loc[rng.random(n_rows) < 0.08, "data_usage_gb"] = np.nan
    frame.loc[rng.random(n_rows) < 0.03, "age"] = np.nan
    frame.loc[rng.random(n_rows) < 0.02, "payment_method"] = None
    return frame


def demo_churn_logit(frame: pd.DataFrame) -> np.ndarray:
    """The true signal (before the intercept): the shape models have to find.

    Linear in tenure and charges, a step in support calls, an interaction between
    the premium plan and many calls, and low or missing usage as a risk sign:
    a linear model gets part of it, trees get more.
    """
    calls = frame["support_calls"].to_numpy()
    usage = frame["data_usage_gb"].to_numpy()
    return (
        -0.035 * frame["tenure_months"].to_numpy()
        + 0.02 * (frame["monthly_charges"].to_numpy() - 60.0)
        + 1.3 * (calls >= 3)
        + 1.5 * ((frame["plan"] == "premium").to_numpy() & (calls >= 3))
        + 1.4 * (frame["contract"] == "month-to-month").to_numpy()
        + 0.7 * (frame["payment_method"] == "e-check").to_numpy()
        + 1.0 * np.nan_to_num(usage < 3.0, nan=0.0)
        + 0.8 * np.isnan(usage)
    )


def _intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """Bisection on the intercept so that the mean churn probability equals `rate`."""
    low, high = -30.0, 30.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) > rate:
            high = mid
        else:
            low = mid
    return (low + high) / 2


def generate_demo_table(n_rows: int, seed: int, positive_rate: float = 0.05) -> pd.DataFrame:
    """A churn table with the traits of real data: id, timestamp, numeric and
    categorical columns, missing values, a rare positive class given as "yes"/"no"."""
    rng = np.random.default_rng(seed)
    frame = _demo_features(n_rows, rng)
    logit = demo_churn_logit(frame)
    probability = 1 / (1 + np.exp(-(logit + _intercept_for_rate(logit, positive_rate))))
    churned = rng.random(n_rows) < probability
    frame.insert(2, DEMO_TARGET, np.where(churned, "yes", "no"))
    return frame


DRIFT_SCENARIOS = ("none", "covariate", "prior", "concept", "broken")


def generate_production_batch(
    n_rows: int,
    seed: int,
    scenario: str = "none",
    shifted_features: tuple[str, ...] = ("monthly_charges", "tenure_months"),
    positive_rate: float = 0.05,
) -> pd.DataFrame:
    """Rows as production might send them, with a chosen kind of drift from the demo
    training data (which `generate_demo_table` makes with the same `positive_rate`):

    - none: same distributions, same relation to the label;
    - covariate: named features shift (charges up by a third, tenure down by half,
      others scaled up by half); the label still follows the same true signal;
    - prior: three times the positive rate, each class's features unchanged;
    - concept: same inputs, but churn now follows another signal;
    - broken: unseen spellings of `region`, `age` given in months (out of range)
      and mostly missing: input-quality problems that barely move the scores.
    """
    if scenario not in DRIFT_SCENARIOS:
        raise DataError(f"scenario '{scenario}' is not one of {list(DRIFT_SCENARIOS)}")
    rng = np.random.default_rng(seed)
    pool = _demo_features(n_rows * 4 if scenario == "prior" else n_rows, rng)
    base_logit = demo_churn_logit(pool)
    intercept = _intercept_for_rate(base_logit, positive_rate)
    if scenario == "covariate":
        for column in shifted_features:
            if column == "monthly_charges":
                pool[column] = (pool[column] * 1.33).round(2)
            elif column == "tenure_months":
                pool[column] = np.maximum(1, pool[column] // 2)
            else:
                pool[column] = pool[column] * 1.5
    logit = demo_churn_logit(pool)
    if scenario == "concept":
        # Tenure and contract no longer protect; age and region now drive churn.
        logit = (
            0.04 * (pool["age"].fillna(45).to_numpy() - 45)
            + 1.5 * (pool["region"] == "south").to_numpy()
            + 1.0 * (pool["support_calls"].to_numpy() == 0)
        )
        intercept = _intercept_for_rate(logit, positive_rate)
    churned = rng.random(len(pool)) < 1 / (1 + np.exp(-(logit + intercept)))
    pool.insert(2, DEMO_TARGET, np.where(churned, "yes", "no"))
    if scenario == "prior":
        positives = pool[churned].head(int(n_rows * positive_rate * 3))
        negatives = pool[~churned].head(n_rows - len(positives))
        pool = pd.concat([positives, negatives]).sample(frac=1.0, random_state=seed)
    if scenario == "broken":
        broken = rng.random(len(pool)) < 0.5
        pool.loc[broken, "region"] = pool.loc[broken, "region"].str.upper()
        pool.loc[broken, "age"] = pool.loc[broken, "age"] * 12
        pool.loc[rng.random(len(pool)) < 0.4, "age"] = np.nan
    return pool.reset_index(drop=True)


def iter_table_batches(path: str | Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield the table at `path` in batches of at most `chunk_rows`, never all of it at once."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.source: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            yield from pd.read_csv(path, chunksize=chunk_rows)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file is empty (no header, no rows)") from None
        except pd.errors.ParserError as exc:
            raise DataError(f"{path}: not a readable CSV ({exc})") from None
    elif suffix in {".parquet", ".pq"}:
        try:
            parquet = pq.ParquetFile(path)
        except pa.ArrowInvalid as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        raise DataError(f"data.source: {path} must end in .csv or .parquet")


def _prepare_batch(
    batch: pd.DataFrame, required: list[str], drop: list[str], time_column: str | None
) -> pd.DataFrame:
    if missing := [c for c in required if c not in batch.columns]:
        raise DataError(
            f"column(s) {missing} named in params.yaml are not in the table; it has {list(batch.columns)}"
        )
    batch = batch.drop(columns=[c for c in drop if c in batch.columns])
    if time_column:
        try:
            batch[time_column] = pd.to_datetime(batch[time_column])
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"column '{time_column}' (data.time_column) is not a timestamp: {exc}"
            ) from None
    return batch


def write_batches_to_parquet(
    batches: Iterable[pd.DataFrame],
    target: str | Path,
    required: list[str],
    drop: list[str] = (),  # type: ignore[assignment]
    time_column: str | None = None,
) -> int:
    """Stream batches into one Parquet file (atomically); return the row count.

    Every batch is cast to the first batch's schema, so a column whose type
    changes half-way through a file is reported by name instead of corrupting it.
    """
    rows = 0
    with atomic_path(target) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for batch in batches:
                batch = _prepare_batch(batch, required, list(drop), time_column)
                table = pa.Table.from_pandas(batch, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                else:
                    table = _cast_like(table, writer.schema)
                writer.write_table(table)
                rows += len(batch)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise DataError("the table has no rows and no header")
    return rows


def _cast_like(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.names != schema.names:
        raise DataError(f"columns changed between batches: {table.schema.names} vs {schema.names}")
    columns = []
    for name, field in zip(schema.names, schema, strict=True):
        column = table.column(name)
        try:
            columns.append(column.cast(field.type) if column.type != field.type else column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(
                f"column '{name}' changes type from {field.type} to {column.type} part-way through the "
                "file; fix the column or raise data.read_chunk_rows so its type is inferred from more rows"
            ) from None
    return pa.Table.from_arrays(columns, schema=schema)


def encode_target(labels: pd.Series, positive_label: str | int | bool) -> pd.Series:
    """1 where the label equals `positive_label`, else 0, whatever the labels' type
    ("Yes"/"No" strings, 0/1 integers, booleans)."""
    if labels.isna().any():
        raise DataError(
            f"target column '{labels.name}' has {int(labels.isna().sum())} missing labels"
        )
    if pd.api.types.is_numeric_dtype(labels) and not isinstance(positive_label, str):
        positive = labels == positive_label
    else:
        positive = labels.astype(str) == str(positive_label)
    if not positive.any():
        seen = sorted(map(str, labels.unique()))[:10]
        raise DataError(
            f"data.positive_label {positive_label!r} never occurs in target '{labels.name}'; values seen: {seen}"
        )
    return pd.Series(positive.astype(int).to_numpy(), index=labels.index, name=labels.name)


@dataclass(frozen=True)
class FeatureSchema:
    """Which columns feed the model, and as what. Saved with the model for serving."""

    numeric: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, list[str]]:
        return asdict(self)

    @classmethod
    def infer(
        cls, frame: pd.DataFrame, exclude: Iterable[str], categorical: list[str] | None = None
    ) -> FeatureSchema:
        """Numbers are numeric features, everything else categorical, unless `categorical` is given."""
        excluded = set(exclude)
        candidates = [c for c in frame.columns if c not in excluded]
        if categorical is not None:
            if unknown := sorted(set(categorical) - set(candidates)):
                raise DataError(
                    f"data.categorical_columns names {unknown}, which are not feature columns"
                )
            chosen = set(categorical)
        else:
            chosen = {c for c in candidates if not pd.api.types.is_numeric_dtype(frame[c])}
        for column in candidates:
            if pd.api.types.is_datetime64_any_dtype(frame[column]):
                raise DataError(
                    f"column '{column}' is a timestamp but not data.time_column; "
                    "add it to data.drop_columns or derive numeric features from it"
                )
        numeric = [c for c in candidates if c not in chosen]
        if not numeric and not chosen:
            raise DataError(
                "no feature columns left after removing target, id, time and drop columns"
            )
        return cls(numeric=numeric, categorical=[c for c in candidates if c in chosen])
