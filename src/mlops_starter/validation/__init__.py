"""Great Expectations checks on the raw table: the suite from params.yaml and a profiled trusted table."""
