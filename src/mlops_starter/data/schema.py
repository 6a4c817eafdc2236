"""What the model sees: the target encoded as 0/1, and which columns are features of which kind."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd

from mlops_starter.errors import DataError


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
