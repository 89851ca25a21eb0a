"""Per-device state: latest property values, desired values, the shadow document."""
