"""The load test: `make loadtest`, or ``python -m loadtest --help``."""
