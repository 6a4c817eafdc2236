"""The leak-free split and its audit, the candidate pipelines, cross-validation and the train stage."""
