"""A table source for JSON Lines files (one JSON object per line), the format many
event pipelines export. List this module in params.yaml `extensions`, then point
data.source (or `mlops score --input`) at a .jsonl file."""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_starter.config import DataConfig
from mlops_starter.data.sources import file_source
from mlops_starter.errors import DataError


@file_source(".jsonl")
class JsonLinesTable:
    def __init__(self, path: Path, data: DataConfig) -> None:
        self.path = path

    def label(self) -> str:
        return str(self.path)

    def columns(self) -> list[str]:
        first = next(self._chunks(1), None)
        if first is None:
            raise DataError(f"{self.path}: the file holds no records")
        return list(first.columns)

    def batches(
        self, columns: list[str], chunk_rows: int, order_by: Sequence[str] = ()
    ) -> Iterator[pd.DataFrame]:
        for chunk in self._chunks(chunk_rows):
            yield chunk.reindex(columns=columns)  # a key absent from every line: missing

    def _chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        try:
            with pd.read_json(self.path, lines=True, chunksize=chunk_rows, dtype=False) as reader:
                yield from reader
        except ValueError as error:
            raise DataError(f"{self.path}: not JSON Lines ({error})") from None

    def total_rows(self) -> int | None:
        return None

    def fingerprint(self, columns: list[str], chunk_rows: int) -> dict[str, Any] | None:
        return None  # a file: DVC hashes it itself
