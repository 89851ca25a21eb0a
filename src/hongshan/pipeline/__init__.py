"""The stages every uplink passes (validate, twin, history, rules), in the order given as data."""
