"""The supervised task a table's target asks for: binary, multi-class or regression.

It is inferred from the target column (`data.task: auto`) or set in params.yaml, once
per stage, by `resolve_task`; the stages then ask the task object, never its name, for
what differs: the target's checks, its encoding, the split's balance report and the
leakage audit's score. Each task is one module registered in TASKS.
"""

from mlops_starter.tasks.base import TASKS, Answers, TargetValues, Task, answers_of
from mlops_starter.tasks.binary import Binary
from mlops_starter.tasks.infer import infer_task, resolve_task
from mlops_starter.tasks.multiclass import Multiclass
from mlops_starter.tasks.regression import Regression

__all__ = [
    "TASKS",
    "Answers",
    "Binary",
    "Multiclass",
    "Regression",
    "TargetValues",
    "Task",
    "answers_of",
    "infer_task",
    "resolve_task",
]
