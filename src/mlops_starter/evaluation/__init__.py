"""Metrics for a rare positive class and the one scoring on the untouched test set."""
