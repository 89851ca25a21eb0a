"""REST API (OpenAPI) for people and applications, on Litestar, guarded by an admin token."""
