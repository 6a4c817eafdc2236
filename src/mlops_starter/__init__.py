"""MLOps starter: train, validate, ship, monitor and roll back a model on a table."""

import os

# Quiet by default, before MLflow is imported: no telemetry calls from a machine that
# may be offline, and no download progress bar in the console of a command that reads
# a model (`mlops monitor`, `mlops serve`). A user's own setting wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
