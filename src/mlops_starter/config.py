"""The one typed view of params.yaml. Nothing else reads that file.

Every section forbids unknown keys, so a typo (`cv_fold: 5`) is an error that
names the key instead of a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mlops_starter.candidates import CANDIDATES, CandidateSettings, validate_candidates
from mlops_starter.errors import ConfigError
from mlops_starter.extensions import import_extensions

DEFAULT_PARAMS = Path("params.yaml")
# Test-set metrics that the gate and the monitor hold bars on.
# Metrics monitoring compares once labels arrive: binary's, then multi-class's and
# regression's (an error's "drop" is its rise).
TestMetric = Literal[
    "roc_auc",
    "pr_auc",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "macro_f1",
    "weighted_f1",
    "balanced_accuracy",
    "accuracy",
    "roc_auc_ovr",
    "pr_auc_ovr",
    "rmse",
    "mae",
    "r2",
    "interval_coverage",
]
# What the monitor estimates before labels (expected_performance.py: binary's, multi-class's).
EstimatedScore = Literal[
    "roc_auc",
    "precision",
    "recall",
    "f1",
    "accuracy",
    "roc_auc_ovr",
    "macro_f1",
    "balanced_accuracy",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoData(_Section):
    n_rows: int = Field(20_000, ge=200)
    seed: int = 7
    positive_rate: float = Field(0.05, gt=0.0, lt=0.5)


class CsvConfig(_Section):
    """How a CSV source is read. Each null setting is sniffed from the file's start."""

    sep: str | None = Field(None, min_length=1, description="field separator, e.g. ';' or a tab")
    decimal: Literal[".", ","] | None = None
    encoding: str | None = Field(None, description="e.g. utf-8, utf-8-sig, cp1252, latin-1")


class DatabaseSource(_Section):
    """A table in a database (any SQLAlchemy URL): a table, or the rows of a query."""

    url: str = Field(description="e.g. postgresql://analyst@db.internal:5432/crm, sqlite:///crm.db")
    table: str | None = Field(None, description="a table, or schema.table")
    query: str | None = Field(None, description="or a SELECT whose rows are the table")
    password_env: str = Field(
        "MLOPS_DB_PASSWORD", description="the environment variable that holds the password"
    )
    fingerprint_column: str | None = Field(
        None,
        description="e.g. updated_at: the row count and its newest value tell DVC the table "
        "changed; null: the row count and a checksum of every row read",
    )

    @model_validator(mode="after")
    def _one_table_no_password(self) -> DatabaseSource:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table and query")
        try:
            url = make_url(self.url)
        except ArgumentError:
            raise ValueError(
                "url is not a database URL such as postgresql://user@host/db"
            ) from None
        if url.password:
            raise ValueError(
                f"url holds a password: remove it, and set it in the environment variable "
                f"{self.password_env} (data.source.password_env) instead"
            )
        return self

    def label(self) -> str:
        """What logs, tags and messages show: the URL (it holds no password) and table."""
        return f"{self.url} {'table ' + self.table if self.table else 'query'}"


class DataConfig(_Section):
    source: str | DatabaseSource = "demo"
    recheck_source: list[Literal["table"]] = Field(
        [],
        description="[table] for a database source: DVC cannot hash a table, so the "
        "fingerprint@table stage re-reads it on every dvc repro; [] for a file, which DVC "
        "hashes itself",
    )
    demo: DemoData = DemoData()
    target: str
    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        "auto",
        description="auto: two values are binary; text, or whole numbers with at most "
        "max_classes values, multi-class; other numbers regression",
    )
    max_classes: int = Field(
        20, ge=3, le=1000, description="classes a multi-class target has at most"
    )
    positive_label: str | int | bool | None = Field(
        None, description="binary: the target's value that counts as positive"
    )
    id_column: str | None = None
    time_column: str | None = None
    drop_columns: list[str] = []
    categorical_columns: list[str] = Field(
        [], description="integer-coded or free-text columns to treat as categories"
    )
    positive_vs_rest: bool = Field(
        False, description="a target with more than two values: positive_label against all others"
    )
    read_chunk_rows: int = Field(100_000, ge=1)
    csv: CsvConfig = CsvConfig()
    na_values: list[str] = Field(
        ["", "?", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "None", "-", "."],
        description="text that means missing, in any column",
    )

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"

    @property
    def source_label(self) -> str:
        """The source as logs, MLflow tags and model cards show it (never a password)."""
        return self.source.label() if isinstance(self.source, DatabaseSource) else self.source

    @model_validator(mode="after")
    def _roles_are_distinct(self) -> DataConfig:
        roles = [c for c in (self.target, self.id_column, self.time_column) if c]
        if len(set(roles)) != len(roles):
            raise ValueError(
                f"target, id_column and time_column must be different columns, got {roles}"
            )
        if clash := set(roles) & set(self.drop_columns):
            raise ValueError(f"drop_columns names {sorted(clash)}, which the pipeline needs")
        if self.positive_vs_rest and self.task not in ("auto", "binary"):
            raise ValueError(f"positive_vs_rest makes a binary task, but task is {self.task}")
        return self

    @model_validator(mode="after")
    def _recheck_only_a_database(self) -> DataConfig:
        """dvc.yaml makes the fingerprint stage from recheck_source, so it must say what
        the source is: DVC would otherwise miss a changed table, or rerun a stage on every
        repro of a file it hashes anyway."""
        database = isinstance(self.source, DatabaseSource)
        if database and not self.recheck_source:
            raise ValueError(
                "source is a database table, which DVC cannot hash: set recheck_source: "
                "[table], so every dvc repro re-reads its fingerprint and sees when it changed"
            )
        if self.recheck_source and not database:
            raise ValueError(
                "recheck_source is [table], but the source is a file (or the demo), which DVC "
                "hashes itself: set recheck_source: [], so an unchanged dvc repro runs no stage"
            )
        return self


class ValidateConfig(_Section):
    suite: str | None = "expectations/raw_table.json"
    min_rows: int = Field(500, ge=1)
    positive_rate_min: float = Field(0.005, ge=0.0, le=1.0)
    positive_rate_max: float = Field(0.5, ge=0.0, le=1.0)
    min_class_rows: int = Field(20, ge=1, description="multi-class: rows of each class at least")
    target_range: tuple[float, float] | None = Field(
        None, description="regression: [low, high] the target must lie in (null: any finite number)"
    )

    @model_validator(mode="after")
    def _band_is_ordered(self) -> ValidateConfig:
        if self.positive_rate_min > self.positive_rate_max:
            raise ValueError("positive_rate_min must not exceed positive_rate_max")
        if self.target_range is not None and self.target_range[0] > self.target_range[1]:
            raise ValueError("target_range: low must not exceed high")
        return self


class SplitConfig(_Section):
    strategy: Literal["stratified", "time", "group"] = "stratified"
    test_size: float = Field(0.2, gt=0.0, lt=0.9)
    seed: int = 42
    group_column: str | None = None

    @model_validator(mode="after")
    def _group_needs_column(self) -> SplitConfig:
        if self.strategy == "group" and not self.group_column:
            raise ValueError("strategy 'group' needs group_column")
        return self


class LeakageConfig(_Section):
    max_single_feature_auc: float = Field(0.95, gt=0.5, le=1.0)
    max_single_feature_r2: float = Field(
        0.95, gt=0.0, le=1.0, description="regression: the same ceiling on one feature's R²"
    )
    allowed_features: list[str] = []
    max_shared_feature_rows: int = Field(0, ge=0)


SearchValue = str | int | float | bool | None


class SearchRange(_Section):
    """One parameter's search range: numbers from `low` to `high` (integers if both are,
    sampled on a log scale if `log`), or one of `choices`."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    choices: list[SearchValue] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None or not self.choices:
                raise ValueError("give either low and high, or a non-empty list of choices")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("give low < high (or choices)")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        return self

    def bounds(self) -> list[SearchValue]:
        return list(self.choices) if self.choices is not None else [self.low, self.high]


class TuningConfig(_Section):
    """Nested hyperparameter search (src/mlops_starter/training/tuning.py)."""

    enabled: bool = False
    trials: int = Field(15, ge=1, description="trials per search: the deterministic budget")
    timeout_seconds: float | None = Field(
        None, gt=0, description="per search as well; a time budget depends on the machine"
    )
    inner_folds: int = Field(3, ge=2, le=10)
    storage: str = Field(
        "optuna.db", description="SQLite file or database URL where studies resume from"
    )
    space: dict[str, dict[str, SearchRange]] = {}

    @model_validator(mode="after")
    def _space_names_real_parameters(self) -> TuningConfig:
        for candidate, ranges in self.space.items():
            if candidate not in CANDIDATES:
                raise ValueError(
                    f"space.{candidate}: not a candidate (one of {sorted(CANDIDATES)})"
                )
            params = CANDIDATES[candidate].settings
            for name, search in ranges.items():
                if name not in params.model_fields or name == "enabled":
                    raise ValueError(
                        f"space.{candidate}.{name}: not a parameter of {candidate} "
                        f"(one of {sorted(set(params.model_fields) - {'enabled'})})"
                    )
                for value in search.bounds():
                    try:
                        params.model_validate({name: value})
                    except ValidationError as exc:
                        reason = exc.errors()[0]["msg"]
                        raise ValueError(
                            f"space.{candidate}.{name}: {value!r} is not a valid value ({reason})"
                        ) from None
        return self


class TrainConfig(_Section):
    cv_folds: int = Field(5, ge=2, le=20)
    seed: int = 42
    primary_metric: str = Field(
        "auto",
        description="picks the winner by mean CV score: auto is the task's own (binary "
        "pr_auc, multiclass log_loss, regression rmse); each task names the others it takes",
    )
    threshold_fbeta: float = Field(1.0, gt=0)
    calibration: Literal["sigmoid", "isotonic", "none"] = "sigmoid"
    max_categories: int = Field(
        30, ge=2, description="one-hot columns per categorical at most; rarer values share one"
    )
    resampling: Literal["none", "smote", "undersample"] = "none"
    n_jobs: int = -1
    cost_matrix: list[list[float]] | None = Field(
        None,
        description="multiclass: what predicting column j costs when the class is row i, "
        "classes in sorted order; null: the most probable class",
    )
    interval_coverage: float = Field(
        0.9, gt=0, lt=1, description="regression: share of new values the interval holds"
    )
    candidates: dict[str, SerializeAsAny[CandidateSettings]] = Field(
        default_factory=lambda: validate_candidates({}),
        description="the registered candidates' settings (src/mlops_starter/candidates.py)",
    )
    tuning: TuningConfig = TuningConfig()

    @field_validator("candidates", mode="before")
    @classmethod
    def _registered_candidates(cls, raw: Any) -> dict[str, CandidateSettings]:
        return validate_candidates(raw)

    @model_validator(mode="after")
    def _at_least_one_candidate(self) -> TrainConfig:
        if not self.enabled_candidates():
            raise ValueError("enable at least one of train.candidates")
        return self

    def enabled_candidates(self) -> dict[str, CandidateSettings]:
        """Enabled candidates by name, in the registry's order."""
        return {name: settings for name, settings in self.candidates.items() if settings.enabled}


class SliceConfig(_Section):
    """Which slices of the test set are scored, and when one is flagged."""

    metric: Literal["roc_auc", "pr_auc", "recall"] = "roc_auc"
    min_rows: int = Field(200, ge=10, description="fewer rows: the slice is not assessed")
    min_positives: int = Field(10, ge=1, description="fewer positives: not assessed")
    numeric_features: int = Field(3, ge=0, description="the most important ones get bins")
    bins: int = Field(4, ge=2, le=20, description="quantile bins per numeric feature")
    flag_below: float = Field(0.10, gt=0, description="flag a slice this far below the whole")


class EvaluateConfig(_Section):
    importance_repeats: int = Field(5, ge=1, description="shuffles per feature")
    slices: SliceConfig = SliceConfig()


class ModelCardConfig(_Section):
    """What the model card says that no metric can (src/mlops_starter/registry/model_card.py)."""

    intended_use: str = "Not stated: set model_card.intended_use in params.yaml."
    out_of_scope: str = Field("", description="what the model must not be used for")
    limitations: list[str] = Field([], description="known limits, one per item")


class TestBars(_Section):
    """The gate's bars on the test metrics of each task, by metric name: the least a score
    may be, the most an error may be (log_loss, rmse, mae). The register stage names a
    task's metrics when a name is not one of them."""

    __test__ = False  # not a pytest class, whatever its name

    binary: dict[str, float] = {"roc_auc": 0.7, "pr_auc": 0.15}
    multiclass: dict[str, float] = {"roc_auc_ovr": 0.7}
    regression: dict[str, float] = {"r2": 0.3}


class GateConfig(_Section):
    min_test: TestBars = TestBars()
    min_brier_skill: float | None = Field(
        0.0, description="binary: the test Brier skill score against the base rate must exceed this"
    )
    compare_metric: str = Field(
        "auto",
        description="the paired bootstrap against the champion compares this test metric; "
        "auto: binary pr_auc, multiclass roc_auc_ovr, regression r2",
    )
    max_regression: float = Field(0.02, ge=0.0)
    bootstrap_rounds: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = 0
    min_unseen_rows: int = Field(
        200, ge=1, description="test rows the champion never trained on, to compare at all"
    )
    min_unseen_positives: int = Field(20, ge=1, description="positives among those rows")
    too_few_unseen: Literal["warn", "fail"] = Field(
        "warn", description="with fewer: pass with a warning, or fail the comparison"
    )
    auto_promote_first: bool = True
    min_worst_slice: float | None = Field(
        None, description="the lowest slice's evaluate.slices.metric must reach this (None: off)"
    )


class MlflowConfig(_Section):
    experiment: str = "mlops-starter"
    registered_model: str = "churn-classifier"


class ExperimentConfig(_Section):
    """A challenger beside the champion on live traffic, and how its verdict is reached
    (monitoring/experiment.py, `mlops experiment report`)."""

    mode: Literal["off", "shadow", "split"] = Field(
        "off",
        description="shadow: the challenger scores every row off the request path; "
        "split: it answers challenger_share of the rows (a bento built with a challenger)",
    )
    name: str = Field("experiment-1", min_length=1, description="salts the split's hash")
    challenger_share: float = Field(0.1, gt=0, lt=1, description="split: share of traffic")
    maturation_hours: float = Field(
        720, ge=0, description="a row counts once its prediction is this old (its label is final)"
    )
    outcome: str = Field(
        "log_loss",
        description="log_loss: the model's own loss (a regression's: the squared error); or "
        "a column of the labels file (higher is better)",
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="the false-verdict rate allowed")
    power: float = Field(0.8, gt=0.5, lt=1)
    min_detectable_effect: float = Field(
        0.01, gt=0, description="the smallest gain per row worth finding, in the outcome's units"
    )
    planned_rows: int = Field(
        20_000,
        ge=100,
        description="matured rows the experiment expects: the interval is tightest there",
    )


class ServeConfig(_Section):
    """How the served model treats input and load; handed to the bento as its arguments."""

    port: int = Field(3000, ge=1, le=65535)
    workers: int = Field(2, ge=1)
    max_records: int = Field(1000, ge=1)
    max_body_bytes: int = Field(2_000_000, ge=1024)
    unseen_category: Literal["accept", "reject"] = "accept"
    out_of_range: Literal["accept", "reject"] = "accept"
    # ignore: fields the model does not use are left out and named in the answer's
    # warnings, so a client survives a retrain that drops one; reject: 400.
    unknown_fields: Literal["ignore", "reject"] = "ignore"
    prediction_log_dir: str = "predictions"
    prediction_log_max_mb: int = Field(
        64, ge=1, description="a process's log file is rotated at this size, and at midnight"
    )
    prediction_log_keep: int = Field(
        100,
        ge=1,
        description="rotated log files (Parquet, or gzipped) kept in the directory, newest first",
    )
    log_sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    access_log: bool = False
    keepalive_requests: int = Field(100, ge=1)
    # optional: callers need the API key when the machine sets one, the service is open
    # when it sets none; required: it does not start without one (serving/auth.py).
    auth: Literal["optional", "required"] = "optional"
    experiment: ExperimentConfig = ExperimentConfig()


class NotifyConfig(_Section):
    """Where `mlops monitor` posts its alerts (monitoring/notify.py)."""

    webhook_env: str = Field(
        "MLOPS_ALERT_WEBHOOK",
        description="the environment variable holding a Slack-format webhook URL; unset: no post",
    )
    page_url: str | None = Field(
        None,
        description="the page's address in the post; null: the CI run's page, else the file's path",
    )


class RetrainConfig(_Section):
    """When the scheduled monitor starts a retrain (.github/workflows/retrain.yml): once
    any of `checks` alerted in `alerting_windows` of the last `of_last` assessed windows."""

    checks: list[str] = Field(
        ["estimated_performance", "performance"],
        min_length=1,
        description="the checks whose alerts count (names in monitoring/checks.py, or a team's own)",
    )
    alerting_windows: int = Field(2, ge=1)
    of_last: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _a_possible_count(self) -> RetrainConfig:
        if self.alerting_windows > self.of_last:
            raise ValueError(
                f"alerting_windows ({self.alerting_windows}) cannot exceed of_last ({self.of_last})"
            )
        return self


class MonitorConfig(_Section):
    """Alert thresholds for `mlops monitor` (src/mlops_starter/monitoring/checks.py)."""

    psi_threshold: float = Field(0.2, gt=0)
    max_missing_rate_increase: float = Field(0.10, gt=0, le=1)
    max_issue_rate: float = Field(0.05, gt=0, le=1)
    max_positive_rate_shift: float = Field(0.04, gt=0, le=1)
    max_metric_drop: dict[TestMetric, float] = {
        "roc_auc": 0.10,
        "pr_auc": 0.10,
        "roc_auc_ovr": 0.10,
        "r2": 0.10,
    }
    min_estimated: dict[EstimatedScore, float] = Field(
        {},
        description="fixed floors for performance estimated before labels, beside the band "
        "learned from the test set (roc_auc: 0.7)",
    )
    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_rejected_rate: float = Field(0.05, ge=0, le=1)
    max_latency_p99_s: float = Field(1.0, gt=0)
    min_rows: int = Field(200, ge=1)
    window: str = Field(
        "1D",
        description="how much log each run of the checks covers, as a time span: 1D, 6h, 7D",
    )
    notify: NotifyConfig = NotifyConfig()
    retrain_when: RetrainConfig = RetrainConfig()
    custom: dict[str, dict[str, Any]] = Field(
        {}, description="the settings of a team's own checks, by check name"
    )

    @field_validator("window")
    @classmethod
    def _a_time_span(cls, window: str) -> str:
        import pandas as pd

        try:
            span = pd.Timedelta(window)
        except ValueError:
            raise ValueError(f"{window!r} is not a time span such as 1D, 6h or 30min") from None
        if span <= pd.Timedelta(0):
            raise ValueError(f"{window!r} must be longer than zero")
        return window


class DaskConfig(_Section):
    scheduler_address: str | None = Field(
        None,
        description="tcp://host:8786 of a running cluster; null: DASK_SCHEDULER_ADDRESS or a LocalCluster",
    )
    local_workers: int = Field(
        2, ge=1, description="workers of the LocalCluster started when no address is set"
    )


class ScaleConfig(_Section):
    """How the stages read the table: all at once, or in batches (docs/how-to/scaling.md)."""

    mode: Literal["in_memory", "streaming", "dask"] = "in_memory"
    batch_rows: int = Field(100_000, ge=1, description="rows per batch and per Parquet row group")
    sample_rows: int = Field(
        200_000,
        ge=100,
        description="rows of the deterministic sample that preprocessing statistics, the leakage "
        "audit, slices and importance are computed on",
    )
    dask: DaskConfig = DaskConfig()

    def batching(self, rows: int) -> tuple[int, int]:
        """(rows per batch, rows per sample) for a table of `rows`: in memory the whole
        table is one batch and its own sample, so every mode runs the same code."""
        if self.mode == "in_memory":
            return max(rows, 1), max(rows, 1)
        return self.batch_rows, self.sample_rows


class Paths(_Section):
    source_fingerprint: str = "data/source.fingerprint.json"
    raw: str = Field("data/raw/table.parquet", description="ingest's table")
    train: str = Field("data/split/train.parquet", description="the split's training rows")
    test: str = Field("data/split/test.parquet", description="the split's test rows")
    reports: str = Field("reports", description="validation, leakage, slices, gate, model card")
    model_dir: str = Field("models", description="the model file, its metadata and stamps")
    metrics: str = Field("metrics", description="DVC metrics: cv.json, test.json")
    plots: str = Field(
        "plots", description="DVC plots: ROC, PR, confusion, calibration, importance"
    )


class Config(_Section):
    data: DataConfig
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    split: SplitConfig = SplitConfig()
    leakage: LeakageConfig = LeakageConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    gate: GateConfig = GateConfig()
    model_card: ModelCardConfig = ModelCardConfig()
    mlflow: MlflowConfig = MlflowConfig()
    serve: ServeConfig = ServeConfig()
    monitor: MonitorConfig = MonitorConfig()
    scale: ScaleConfig = ScaleConfig()
    paths: Paths = Paths()
    extensions: list[str] = Field(
        [],
        description="a team's own modules (dotted names, at the repository root or on "
        "PYTHONPATH), imported first: each registers its sources, checks or candidates",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _cross_section_checks(self) -> Config:
        if self.split.strategy == "time" and not self.data.time_column:
            raise ValueError("split.strategy 'time' needs data.time_column")
        if self.scale.mode != "in_memory":
            # Each of these needs every training row in memory at once.
            if self.train.tuning.enabled:
                raise ValueError(
                    f"scale.mode {self.scale.mode} cannot run train.tuning (nested search holds "
                    "the training rows); set train.tuning.enabled: false or scale.mode: in_memory"
                )
            if self.train.resampling != "none":
                raise ValueError(
                    f"scale.mode {self.scale.mode} cannot run train.resampling "
                    f"'{self.train.resampling}'; use train.candidates.xgboost.scale_pos_weight "
                    "for class imbalance, or scale.mode: in_memory"
                )
            if not self.train.candidates["xgboost"].enabled:
                raise ValueError(
                    f"scale.mode {self.scale.mode} trains only the xgboost candidate, which is disabled"
                )
        return self

    @property
    def non_feature_columns(self) -> list[str]:
        """Columns that identify, order, group or label rows: never model inputs."""
        roles = (
            self.data.target,
            self.data.id_column,
            self.data.time_column,
            self.split.group_column,
        )
        return [c for c in roles if c]

    @classmethod
    def from_dict(cls, raw: object, source: str = "params.yaml") -> Config:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"{source}: {problems}") from None

    @classmethod
    def from_yaml(cls, path: str | Path = DEFAULT_PARAMS) -> Config:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: file not found (run from the repository root)")
        try:
            # YAML 1.2, as DVC reads and rewrites this file (`dvc exp run -S`): there `yes`
            # is a string, whereas a YAML 1.1 parser would turn a label "yes" into True.
            raw = YAML(typ="safe").load(path.read_text())
        except YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        # A team's modules first: they register the candidates and checks the rest names.
        if isinstance(raw, dict) and isinstance(modules := raw.get("extensions", []), list):
            import_extensions([str(m) for m in modules], path.resolve().parent)
        return cls.from_dict(raw, source=str(path))
