"""Project tools run through make: ``python -m tools.release_check``."""
