"""CSV files as spreadsheets save them: `;` between fields and `,` as the decimal mark
in much of Europe, tabs, a UTF-8 byte-order mark, Windows code pages. What params.yaml
does not say (data.csv.*) is sniffed from the file's first bytes."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mlops_starter.config import CsvConfig

SAMPLE_BYTES = 64 * 1024
SAMPLE_LINES = 200
SEPARATORS = [",", ";", "\t", "|"]
_COMMA_DECIMAL = re.compile(r"^[-+]?\d*,\d+$")
_POINT_DECIMAL = re.compile(r"^[-+]?\d*\.\d+$")


@dataclass(frozen=True)
class CsvFormat:
    sep: str
    decimal: str
    encoding: str
    sniffed: tuple[str, ...]  # the settings that were sniffed, not set

    def describe(self) -> str:
        shown = {"sep": repr(self.sep), "decimal": repr(self.decimal), "encoding": self.encoding}
        parts = [
            f"{name}={value}" + (" (sniffed)" if name in self.sniffed else "")
            for name, value in shown.items()
        ]
        return ", ".join(parts) + "; data.csv.* in params.yaml overrides a sniffed one"


def sniff_csv(path: str | Path, settings: CsvConfig) -> CsvFormat:
    """The separator, decimal mark and encoding to read `path` with: each as `settings`
    says, or as the file's first SAMPLE_BYTES suggest."""
    with open(path, "rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    encoding = settings.encoding or _encoding(sample)
    text = sample.decode(encoding, errors="ignore")
    if len(sample) == SAMPLE_BYTES:  # the last line may be cut short
        text = text[: text.rfind("\n") + 1] or text
    sep = settings.sep or _separator(text)
    decimal = settings.decimal or _decimal(text, sep)
    sniffed = tuple(
        name for name in ("sep", "decimal", "encoding") if getattr(settings, name) is None
    )
    return CsvFormat(sep, decimal, encoding, sniffed)


def _encoding(sample: bytes) -> str:
    """UTF-8 (without its byte-order mark, if any); else the Windows code page Excel
    writes; else latin-1, which decodes any byte."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(sample) - 3 and len(sample) == SAMPLE_BYTES:
            return "utf-8"  # only the sample's cut split a character
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _rows(text: str, sep: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    rows = []
    try:
        for row in reader:
            rows.append(row)
            if len(rows) >= SAMPLE_LINES:
                break
    except csv.Error:
        pass
    return rows


def _separator(text: str) -> str:
    """The candidate that splits most sampled rows into the same number (> 1) of fields;
    ties go to the comma."""
    best, best_score = ",", 0
    for sep in SEPARATORS:
        counts = Counter(len(row) for row in _rows(text, sep) if row)
        if not counts:
            continue
        fields, rows = counts.most_common(1)[0]
        if fields > 1 and rows > best_score:
            best, best_score = sep, rows
    return best


def _decimal(text: str, sep: str) -> str:
    """',' when fields like 1,5 outnumber fields like 1.5 (a comma cannot be both the
    separator and the decimal mark)."""
    if sep == ",":
        return "."
    values = [field.strip() for row in _rows(text, sep)[1:] for field in row]
    commas = sum(bool(_COMMA_DECIMAL.match(v)) for v in values)
    points = sum(bool(_POINT_DECIMAL.match(v)) for v in values)
    return "," if commas > points else "."
