"""Multi-class: one of three or more labels (text, or whole numbers with at most
data.max_classes distinct values).

The model's probabilities are calibrated by temperature scaling (Guo et al., 2017): one
number that softens or sharpens every row's probabilities alike, fitted on the
out-of-fold predictions to minimise their log loss. It keeps each row's ranking of
classes, and a one-number map cannot overfit the out-of-fold rows the way a map per
class can. The decision is the most probable class, or the class of least expected cost
under train.cost_matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mlops_starter.config import DataConfig, LeakageConfig, TrainConfig, ValidateConfig
from mlops_starter.errors import ConfigError, DataError
from mlops_starter.rounding import round_sig
from mlops_starter.tasks.base import (
    Answers,
    TargetValues,
    Task,
    TestReport,
    expectation,
    register_task,
)
from mlops_starter.tasks.binary import single_feature_auc

_EDGE = 1e-15  # the least probability a log is taken of


def _log_probabilities(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(proba, _EDGE, 1.0))


def tempered(proba: np.ndarray, temperature: float) -> np.ndarray:
    """`proba` (rows of class probabilities) at `temperature`: above 1 softer, below sharper."""
    logits = _log_probabilities(proba) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log probability of each row's own class (codes in `y`)."""
    return float(-np.mean(_log_probabilities(proba[np.arange(len(y)), y])))


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the log loss of `proba` against `y`, between 1/20
    and 20, rounded (rounding.py): a bounded scalar search needs no gradient."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(
        lambda log_t: log_loss(y, tempered(proba, float(np.exp(log_t)))),
        bounds=(-3.0, 3.0),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return round_sig(float(np.exp(found.x)))


def decide(proba: np.ndarray, cost: np.ndarray | None) -> np.ndarray:
    """Each row's class code: the most probable, or the least expected cost, where
    row i, column j of `cost` is what predicting class j costs when the row is of class i."""
    return np.argmax(proba, axis=1) if cost is None else np.argmin(proba @ cost, axis=1)


def _macro_roc_auc(y: np.ndarray, proba: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    classes = np.arange(proba.shape[1])
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=classes, average="macro"))


def _macro_pr_auc(y: np.ndarray, proba: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y[:, None] == np.arange(proba.shape[1]), proba))


def _f1(average: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    def score(y: np.ndarray, proba: np.ndarray, predicted: np.ndarray) -> float:
        from sklearn.metrics import f1_score

        classes = np.arange(proba.shape[1])
        return float(f1_score(y, predicted, labels=classes, average=average, zero_division=0))

    return score


def _balanced_accuracy(y: np.ndarray, proba: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in `y`."""
    return float(np.mean([np.mean(predicted[y == c] == c) for c in np.unique(y)]))


# The summary scores of one set of rows (every class present in y), each from
# (codes, probabilities, decided codes).
SCORERS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "log_loss": lambda y, proba, predicted: log_loss(y, proba),
    "macro_f1": _f1("macro"),
    "weighted_f1": _f1("weighted"),
    "balanced_accuracy": _balanced_accuracy,
    "accuracy": lambda y, proba, predicted: float(np.mean(predicted == y)),
    "roc_auc_ovr": _macro_roc_auc,
    "pr_auc_ovr": _macro_pr_auc,
}


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Every summary score of one set of rows."""
    return {name: scorer(y, proba, predicted) for name, scorer in SCORERS.items()}


def per_class_metrics(
    y: np.ndarray, predicted: np.ndarray, labels: tuple[Any, ...]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and rows of each class, by its label."""
    from sklearn.metrics import precision_recall_fscore_support

    codes = np.arange(len(labels))
    precision, recall, f1, rows = precision_recall_fscore_support(
        y, predicted, labels=codes, zero_division=0
    )
    return {
        str(label): {
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "rows": int(rows[c]),
        }
        for c, label in enumerate(labels)
    }


def one_against_rest_curves(
    y: np.ndarray, proba: np.ndarray, labels: tuple[Any, ...]
) -> dict[str, pd.DataFrame]:
    """ROC and precision-recall curves of each class against the rest, one block of rows
    per class (its label in `class`)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    roc, pr = [], []
    for code, label in enumerate(labels):
        fpr, tpr, cut = roc_curve(y == code, proba[:, code])
        roc.append(
            pd.DataFrame(
                {"class": str(label), "fpr": fpr, "tpr": tpr, "threshold": np.clip(cut, 0, 1)}
            )
        )
        precision, recall, cuts = precision_recall_curve(y == code, proba[:, code])
        pr.append(
            pd.DataFrame(
                {
                    "class": str(label),
                    "recall": recall[:-1],
                    "precision": precision[:-1],
                    "threshold": cuts,
                }
            )
        )
    return {"roc": pd.concat(roc, ignore_index=True), "pr": pd.concat(pr, ignore_index=True)}


def confidence_table(
    y: np.ndarray, proba: np.ndarray, predicted: np.ndarray, bins: int = 10
) -> pd.DataFrame:
    """The reliability diagram of the decided class: rows in equal-count bins of the
    probability given to it, mean probability against how often it was right."""
    given = proba[np.arange(len(y)), predicted]
    frame = pd.DataFrame({"p": given, "right": (predicted == y).astype(float)})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), min(bins, len(frame)), labels=False)
    table = frame.groupby("bin").agg(
        mean_predicted=("p", "mean"), observed_rate=("right", "mean"), rows=("p", "size")
    )
    return table.reset_index(drop=True)


class CalibratedMulticlass:
    """A fitted classifier, its temperature and its decision rule, with the sklearn
    prediction API. `labels` are the classes' own values, in the order of their codes."""

    def __init__(
        self,
        classifier: Any,
        temperature: float,
        cost: list[list[float]] | None,
        labels: list[Any],
    ) -> None:
        self.classifier = classifier
        self.temperature = temperature
        self.cost = cost
        self.labels = labels

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classifier.classes_)

    def predict_proba(self, X: Any) -> np.ndarray:
        return tempered(np.asarray(self.classifier.predict_proba(X)), self.temperature)

    def predict(self, X: Any) -> np.ndarray:
        cost = None if self.cost is None else np.asarray(self.cost)
        return self.classes_[decide(self.predict_proba(X), cost)]


@dataclass(frozen=True)
class MulticlassAnswers(Answers):
    """The decided class, and every class's calibrated probability by name."""

    task: ClassVar[str] = "multiclass"
    classes: tuple[str, ...]
    cost_matrix: tuple[tuple[float, ...], ...] | None = None

    def decide(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        cost = None if self.cost_matrix is None else np.asarray(self.cost_matrix)
        label = np.asarray(self.classes, dtype=object)[decide(raw, cost)]
        return {"label": label, "probabilities": raw}

    def per_row(self, decided: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        rows = decided["probabilities"].tolist()
        return {
            "label": decided["label"].tolist(),
            "probabilities": [dict(zip(self.classes, row, strict=True)) for row in rows],
        }

    def columns(self, decided: dict[str, np.ndarray]) -> dict[str, Any]:
        # A row per class, each contiguous: what JSON encoders of numpy arrays take.
        per_class = np.ascontiguousarray(decided["probabilities"].T)
        return {
            "label": decided["label"].tolist(),  # text, which such encoders do not take
            "probabilities": dict(zip(self.classes, per_class, strict=True)),
        }

    @staticmethod
    def _probability() -> dict[str, Any]:
        return {"type": "number", "minimum": 0, "maximum": 1}

    def _per_class(self, description: str, field: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "description": description,
            "properties": {name: field for name in self.classes},
            "required": list(self.classes),
            "additionalProperties": False,
        }

    def fields(self) -> dict[str, dict[str, Any]]:
        rule = "least expected cost (train.cost_matrix)" if self.cost_matrix else "most probable"
        return {
            "label": {
                "type": "string",
                "enum": list(self.classes),
                "description": f"the decided class: the {rule}",
            },
            "probabilities": self._per_class(
                "each class's calibrated probability (they sum to 1)", self._probability()
            ),
        }

    def column_fields(self) -> dict[str, dict[str, Any]]:
        return super().column_fields() | {
            "probabilities": self._per_class(
                "each class's calibrated probability, a list per class",
                {"type": "array", "items": self._probability()},
            )
        }

    def from_log(self, lines: pd.DataFrame) -> dict[str, np.ndarray]:
        by_class = pd.DataFrame(list(lines["probabilities"]), index=lines.index)
        return {
            "label": lines["label"].astype(str).to_numpy(dtype=object),
            "probabilities": by_class[list(self.classes)].to_numpy(dtype=float),
        }

    def drift_series(self, decided: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        probabilities = decided["probabilities"]
        return {f"probability of {c}": probabilities[:, i] for i, c in enumerate(self.classes)}

    def actual(self, actual: pd.Series) -> np.ndarray:
        return np.asarray(pd.Categorical(actual.astype(str), categories=list(self.classes)).codes)

    def raw(self, decided: dict[str, np.ndarray]) -> np.ndarray:
        return decided["probabilities"]

    def utility(self, decided: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        """Minus each row's log loss; a label the model has no class for counts as a
        probability of _EDGE."""
        own = decided["probabilities"][np.arange(len(y)), np.maximum(y, 0)]
        return np.log(np.clip(np.where(y >= 0, own, _EDGE), _EDGE, 1.0))

    def correct(self, decided: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        return np.asarray(self.actual(pd.Series(decided["label"])) == y)

    def class_probabilities(self, decided: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return decided["probabilities"], self.actual(pd.Series(decided["label"]))

    def realized(self, decided: dict[str, np.ndarray], actual: pd.Series) -> dict[str, float] | str:
        codes = self.actual(actual)
        if (codes < 0).any():
            unknown = sorted(set(actual.astype(str)) - set(self.classes))[:5]
            return f"labels the model has no class for: {unknown}"
        if len(np.unique(codes)) < len(self.classes):
            return "the labels lack a class: one-against-rest scores need every class"
        predicted = pd.Categorical(decided["label"], categories=list(self.classes)).codes
        return multiclass_metrics(codes, decided["probabilities"], predicted)

    def described(self) -> dict[str, Any]:
        cost = self.cost_matrix
        return {
            "classes": list(self.classes),
            "decision": "argmax" if cost is None else "least expected cost",
            "cost_matrix": None if cost is None else [list(row) for row in cost],
        }


@register_task
@dataclass(frozen=True)
class Multiclass(Task):
    name: ClassVar[str] = "multiclass"
    leak_score_name: ClassVar[str] = "one-against-rest ROC-AUC, averaged over classes"
    classes: tuple[Any, ...] = ()  # sorted; a label's code is its place here
    metrics: ClassVar[dict[str, bool]] = {name: name != "log_loss" for name in SCORERS}
    default_metric: ClassVar[str] = "log_loss"
    default_compared: ClassVar[str] = "roc_auc_ovr"
    summary_metrics: ClassVar[tuple[str, ...]] = tuple(metrics)
    spread_metrics: ClassVar[tuple[str, ...]] = ("log_loss", "macro_f1")
    candidate_metrics: ClassVar[tuple[str, ...]] = ("log_loss", "macro_f1", "roc_auc_ovr")

    @classmethod
    def fits(cls, values: TargetValues, data: DataConfig) -> str | None:
        if values.n_distinct < 3:
            return f"{values.n_distinct} values: two are data.task: binary"
        if values.kind not in ("text", "integer") and not (values.kind == "float" and values.whole):
            return f"{values.type_name} values are no classes"
        if values.n_distinct > data.max_classes:
            return (
                f"{values.n_distinct} distinct values, more than data.max_classes "
                f"({data.max_classes}); raise it if they are classes"
            )
        return None

    @classmethod
    def of(cls, values: TargetValues, data: DataConfig, reason: str) -> Multiclass:
        return cls(values.column, reason, values.distinct)

    @property
    def label_bits(self) -> int:  # type: ignore[override]
        return max(1, int(np.ceil(np.log2(len(self.classes)))))

    def expectations(self, rows: int, checks: ValidateConfig) -> list[dict[str, Any]]:
        # One "mostly" check per class: its share of the rows is at least min_class_rows / rows.
        least = checks.min_class_rows
        return [
            expectation(
                "expect_column_values_to_be_in_set",
                f"class {label!r} of '{self.target}' has at least {least} rows",
                "validate.min_class_rows",
                column=self.target,
                value_set=[label],
                mostly=min(1.0, least / rows) if rows else 1.0,
            )
            for label in self.classes
        ]

    def encode(self, labels: pd.Series) -> np.ndarray:
        codes = pd.Categorical(labels, categories=self.classes).codes
        if (codes < 0).any():
            unknown = labels[codes < 0].iloc[0]
            raise DataError(
                f"target '{self.target}' holds {unknown!r}, not one of the classes found at "
                f"ingest ({', '.join(map(repr, self.classes))})"
            )
        return codes.astype(np.int16)

    def tally(self, y: np.ndarray) -> np.ndarray:
        return np.bincount(y, minlength=len(self.classes))

    def balance(self, tally: np.ndarray, rows: int) -> dict[str, Any]:
        return {
            "class_share": {
                str(label): round(int(n) / rows, 5)
                for label, n in zip(self.classes, tally, strict=True)
            }
        }

    def side_problem(self, side: str, tally: np.ndarray, rows: int) -> str | None:
        missing = [label for label, n in zip(self.classes, tally, strict=True) if n == 0]
        if missing:
            return (
                f"the {side} split holds {rows} rows and none of class "
                f"{', '.join(map(repr, missing))}: each side needs every class"
            )
        return None

    def leak_score(self, feature: pd.Series, y: pd.Series) -> float:
        return float(
            np.mean([single_feature_auc(feature, (y == code).astype(int)) for code in np.unique(y)])
        )

    def leak_bar(self, leakage: LeakageConfig) -> tuple[float, str]:
        return leakage.max_single_feature_auc, "leakage.max_single_feature_auc"

    # --- learning ------------------------------------------------------------------------

    def cost_matrix(self, settings: TrainConfig) -> np.ndarray | None:
        """train.cost_matrix, checked against the classes (rows: the true class)."""
        if settings.cost_matrix is None:
            return None
        cost, k = np.asarray(settings.cost_matrix, dtype=float), len(self.classes)
        if cost.shape != (k, k):
            raise ConfigError(
                f"train.cost_matrix is {cost.shape[0]}x{cost.shape[1] if cost.ndim == 2 else 0}"
                f": target '{self.target}' has {k} classes, so it takes {k} rows of {k} costs "
                f"(rows the true class, columns the predicted one), in the order "
                f"{', '.join(map(repr, self.classes))}"
            )
        return cost

    @classmethod
    def score(cls, metric: str, y: np.ndarray, raw: np.ndarray) -> float:
        return SCORERS[metric](y, raw, decide(raw, None))

    def learn(self, oof: np.ndarray, y: np.ndarray, settings: TrainConfig) -> dict[str, Any]:
        cost = self.cost_matrix(settings)
        temperature = 1.0 if settings.calibration == "none" else fit_temperature(oof, y)
        return {
            "temperature": temperature,
            "cost_matrix": None if cost is None else cost.tolist(),
            "classes": [str(label) for label in self.classes],
        }

    def fold_metrics(
        self, y: np.ndarray, oof: np.ndarray, learnt: dict[str, Any]
    ) -> dict[str, float]:
        proba = round_sig(tempered(oof, learnt["temperature"]))
        cost = learnt["cost_matrix"]
        return multiclass_metrics(
            y, proba, decide(proba, None if cost is None else np.asarray(cost))
        )

    def finish(self, model: Any, learnt: dict[str, Any]) -> Any:
        return CalibratedMulticlass(
            model, learnt["temperature"], learnt["cost_matrix"], list(self.classes)
        )

    def read_answers(self, answers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        labels = [str(label) for label in self.classes]
        codes = pd.Categorical(answers["actual"].astype(str), categories=labels).codes
        return codes.astype(np.int16), answers[[f"probability_{c}" for c in labels]].to_numpy()

    @classmethod
    def answers(cls, metadata: dict[str, Any]) -> MulticlassAnswers:
        cost = metadata.get("cost_matrix")
        return MulticlassAnswers(
            tuple(metadata["classes"]),
            None if cost is None else tuple(tuple(float(c) for c in row) for row in cost),
        )

    def rarest_rows(self, y: np.ndarray) -> int:
        return int(np.bincount(y, minlength=len(self.classes)).min())

    def test_report(self, model: Any, X: pd.DataFrame, y: np.ndarray) -> TestReport:
        proba = round_sig(model.predict_proba(X))
        cost = None if model.cost is None else np.asarray(model.cost)
        predicted = decide(proba, cost)
        labels = pd.Index([str(label) for label in self.classes])
        metrics = {
            "rows": len(y),
            **multiclass_metrics(y, proba, predicted),
            "per_class": per_class_metrics(y, predicted, self.classes),
        }
        confusion = pd.DataFrame(
            {
                "actual": pd.Categorical.from_codes(y, labels),
                "predicted": pd.Categorical.from_codes(predicted, labels),
            }
        )
        answers = confusion.assign(
            **{f"probability_{label}": proba[:, code] for code, label in enumerate(labels)}
        )
        tables = one_against_rest_curves(y, proba, self.classes) | {
            "confusion": confusion,
            "calibration": confidence_table(y, proba, predicted),
        }
        return TestReport(metrics, tables, answers)
