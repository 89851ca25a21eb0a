"""Credentials and access: users and password hashes, the topic ACL (device identity later)."""
