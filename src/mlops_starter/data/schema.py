"""What the model sees: the target encoded as 0/1, and which columns are features of which
kind. Every column of a real table gets a defined treatment, and the ones left out say why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from mlops_starter.config import DataConfig
from mlops_starter.errors import ConfigError, DataError
from mlops_starter.tasks.binary import is_positive

# An object column whose values are mostly distinct is free text or an identifier, not a category.
FREE_TEXT_DISTINCT_SHARE = 0.5
FREE_TEXT_MIN_ROWS = 20
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?|^\d{1,2}/\d{1,2}/\d{2,4}$"


def encode_target(
    labels: pd.Series, positive_label: str | int | bool, positive_vs_rest: bool = False
) -> pd.Series:
    """1 where the label equals `positive_label`, else 0, whatever the labels' type
    ("Yes"/"No" strings, 0/1 integers, booleans). A target with more than two values
    is refused unless `positive_vs_rest` says to score the positive label against the rest."""
    name = labels.name
    if labels.isna().any():
        raise DataError(f"target column '{name}' has {int(labels.isna().sum())} missing labels")
    seen = sorted(map(str, labels.unique()))
    if len(seen) < 2:
        raise DataError(
            f"target column '{name}' holds one value only ({seen}): there is nothing to classify"
        )
    if len(seen) > 2 and not positive_vs_rest:
        raise DataError(
            f"target column '{name}' has {len(seen)} values ({seen[:10]}), not two; set "
            f"data.positive_vs_rest: true to score data.positive_label against all the others"
        )
    positive = is_positive(labels, positive_label)
    if not positive.any():
        raise DataError(
            f"data.positive_label {positive_label!r} never occurs in target '{name}'; values seen: {seen[:10]}"
        )
    return pd.Series(positive.astype(int).to_numpy(), index=labels.index, name=name)


def batch_target(frame: pd.DataFrame, data: DataConfig) -> np.ndarray:
    """The 0/1 target of one batch (the validate stage has checked the whole column)."""
    return is_positive(frame[data.target], positive_label(data)).to_numpy(dtype=np.int8)


def target_of(frame: pd.DataFrame, data: DataConfig) -> pd.Series:
    """The 0/1 target of `frame` as params.yaml defines it (column, positive label, vs rest)."""
    return encode_target(frame[data.target], positive_label(data), data.positive_vs_rest)


def positive_label(data: DataConfig) -> str | int | bool:
    if data.positive_label is None:
        raise ConfigError(f"data.positive_label: a binary target '{data.target}' needs one")
    return data.positive_label


def _looks_like_dates(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).head(200)
    return len(sample) > 0 and bool(sample.str.match(DATE_PATTERN).mean() > 0.95)


def _left_out_because(column: pd.Series, listed_categorical: bool) -> str | None:
    """Why a column cannot be a feature as it is, or None if it can."""
    present = column.dropna()
    if present.empty:
        return "all values are missing"
    if present.nunique() == 1:
        return f"constant ({present.iloc[0]})"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "a date/time; derive numeric features from it (age, month, ...) if they matter"
    if pd.api.types.is_numeric_dtype(column) or listed_categorical:
        return None
    if _looks_like_dates(column):
        return "text holding dates; derive numeric features from it if they matter"
    if len(present) >= FREE_TEXT_MIN_ROWS and present.nunique() > FREE_TEXT_DISTINCT_SHARE * len(
        present
    ):
        return (
            f"free text or an identifier ({present.nunique()} distinct values in {len(present)} "
            "rows); list it in data.categorical_columns to use it anyway"
        )
    return None


@dataclass(frozen=True)
class FeatureSchema:
    """Which columns feed the model, and as what; `left_out` names every other column
    with the reason. Saved with the model for evaluation and serving."""

    numeric: list[str]
    categorical: list[str]
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def treatment(self, frame: pd.DataFrame, max_categories: int) -> dict[str, str]:
        """One line per column saying what the pipeline does with it (for the reports)."""
        notes: dict[str, str] = {}
        for column in self.numeric:
            binary = set(frame[column].dropna().unique()) <= {0, 1}
            notes[column] = "numeric, 0/1" if binary else "numeric"
            notes[column] += "; missing values imputed with the median and flagged"
        for column in self.categorical:
            levels = frame[column].nunique()
            notes[column] = f"categorical, {levels} values, one-hot"
            if levels > max_categories:
                notes[column] += (
                    f"; capped at {max_categories} columns inside each fold, rarer values share one"
                )
        return notes | {column: f"left out: {why}" for column, why in self.left_out.items()}

    @classmethod
    def infer(
        cls, frame: pd.DataFrame, exclude: Iterable[str], categorical: Iterable[str] = ()
    ) -> FeatureSchema:
        """Numbers are numeric features, text is categorical, and so is every column in
        `categorical` (integer codes); constant, empty, date and free-text columns are left out."""
        excluded, listed = set(exclude), set(categorical)
        candidates = [c for c in frame.columns if c not in excluded]
        if unknown := sorted(listed - set(candidates)):
            raise DataError(
                f"data.categorical_columns names {unknown}, which are not feature columns"
            )
        left_out = {c: why for c in candidates if (why := _left_out_because(frame[c], c in listed))}
        kept = [c for c in candidates if c not in left_out]
        is_category = {c: c in listed or not pd.api.types.is_numeric_dtype(frame[c]) for c in kept}
        if not kept:
            reasons = "; ".join(f"{c}: {why}" for c, why in left_out.items()) or "none"
            raise DataError(
                "no usable feature columns left after removing target, id, time and drop "
                f"columns; left out: {reasons}"
            )
        return cls(
            numeric=[c for c in kept if not is_category[c]],
            categorical=[c for c in kept if is_category[c]],
            left_out=left_out,
        )
