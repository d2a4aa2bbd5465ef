"""What the service tells its operators: logs now, metrics and drift as they are added."""
