"""Training code: produces the versioned artifacts the service loads."""
