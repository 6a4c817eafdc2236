"""Hypothesis strategies for what users bring: column names a table can have."""

from hypothesis import strategies as st

# Names that collide with Python, pandas, numpy, pydantic or the service's own JSON keys.
AWKWARD_NAMES = [
    "self",
    "class",
    "type",
    "id",
    "def",
    "None",
    "True",
    "lambda",
    "print",
    "index",
    "values",
    "shape",
    "columns",
    "dtypes",
    "T",
    "size",
    "model_config",
    "model_dump",
    "model_fields",
    "json",
    "copy",
    "dict",
    "schema",
    "validate",
    "construct",
    "fields",
    "records",
    "probability",
    "label",
    "warnings",
    "model_version",
    "request_id",
    "_id",
    "_usage",
    "__init__",
    "__class__",
    " spaced name ",
    "a.b",
    "a/b",
    "it's",
    'say "hi"',
    "naïve ø",
    "日本語",
    "1st",
]


def column_names() -> st.SearchStrategy[str]:
    """One column name: an awkward one, any text, or a 200-character one."""
    return st.one_of(
        st.sampled_from(AWKWARD_NAMES),
        st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30),
        st.text("abcXYZ_ ", min_size=200, max_size=200),
    )


def distinct_column_names(max_size: int = 12) -> st.SearchStrategy[list[str]]:
    """Distinct names, sometimes with two that differ only in case."""
    return st.lists(column_names(), min_size=1, max_size=max_size, unique=True).flatmap(
        lambda names: st.sampled_from(
            [names, names + [n.swapcase() for n in names[:1] if n.swapcase() not in names]]
        )
    )
