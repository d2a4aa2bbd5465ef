"""The prediction service: a FastAPI application around one trained scikit-learn model."""
