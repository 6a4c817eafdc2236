"""MLOps starter: train, validate, ship, monitor and roll back a tabular classifier."""
