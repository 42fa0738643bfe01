"""The model's life in MLflow: training, XGBoost, tracking, the registry, and loading a model wherever it lives."""
