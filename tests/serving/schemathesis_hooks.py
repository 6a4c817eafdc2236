"""Schemathesis hooks for the suite's runs on the served OpenAPI document.

A columns body's lists are all of one length, which JSON Schema cannot say (the
document says it in words): shorter lists are padded with their own last value. That
adds no value a list did not already hold, so a body that broke the schema still does.
"""

import schemathesis


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Every phase's cases (the coverage phase's are not drawn through map_body)."""
    body = case.body
    columns = body.get("columns") if isinstance(body, dict) else None
    if isinstance(columns, dict) and all(isinstance(v, list) for v in columns.values()):
        longest = max(map(len, columns.values()), default=0)
        for name, values in columns.items():
            if values:
                columns[name] = values + [values[-1]] * (longest - len(values))
