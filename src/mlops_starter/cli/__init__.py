"""The `mlops` command, one module per area: data, registry, serving, monitoring."""
