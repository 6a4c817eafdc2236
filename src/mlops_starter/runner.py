"""The wrapper every stage entry point shares: logging, timing, and one clear line
(exit code 2) for an expected failure instead of a traceback."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from mlops_starter.errors import PipelineError

T = TypeVar("T")
EXPECTED_FAILURE_EXIT_CODE = 2


def stage(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a stage's main(): time it, log it, and turn a PipelineError into a clean exit."""

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args: object, **kwargs: object) -> T:
            logging.basicConfig(
                level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
            )
            for noisy in ("great_expectations", "mlflow", "alembic", "urllib3"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
            log = logging.getLogger(name)
            started = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except PipelineError as exc:
                print(f"stage '{name}' failed: {exc}", file=sys.stderr)
                raise SystemExit(EXPECTED_FAILURE_EXIT_CODE) from None
            log.info("stage '%s' finished in %.1f s", name, time.perf_counter() - started)
            return result

        return wrapper

    return decorate
