"""Watching the model in production: reference statistics from training, drift later."""
