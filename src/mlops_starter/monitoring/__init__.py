"""Checks on the prediction log (input quality, drift, performance, health), the report and the demo."""
