"""The MLflow registry as the deployment contract: the gate, registration, promotion and rollback."""
