"""What the REST API, the CLI and (later) rules and the console ask of the platform."""
