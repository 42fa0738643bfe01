"""Watching the model in production: drift and quality, the metrics store, alert rules, alerts and retraining."""
