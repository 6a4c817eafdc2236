"""Expected failures of the pipeline.

Each one is caught at the stage boundary and printed as one line that names the
thing at fault; anything else is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """Base class: an expected failure whose message says what to fix."""


class ConfigError(PipelineError):
    """params.yaml (or an override) holds a bad key or value."""


class DataError(PipelineError):
    """The input table cannot be read or lacks what the config names."""


class DataValidationError(PipelineError):
    """The table breaks one or more expectations of the suite."""


class LeakageError(PipelineError):
    """The leakage audit found train/test contamination or a target-leak suspect."""


class ModelFileError(PipelineError):
    """A model file that is refused: a type outside the allow-list, or not skops."""
