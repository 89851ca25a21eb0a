"""Device protocols mapped onto the platform's own model (``Uplink`` in, publishes out)."""
