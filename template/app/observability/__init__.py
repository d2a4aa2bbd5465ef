"""What the service tells its operators: structured logs and the request context."""
