"""HTTP routes and the mapping of errors to HTTP responses."""
