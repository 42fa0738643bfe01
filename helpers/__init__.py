"""Tested code behind the MLOps Workbook notebooks: one module per stage of the model's life."""
