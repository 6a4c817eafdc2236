"""The BentoML service, its input schema and prediction log, packaging, and the server process."""
