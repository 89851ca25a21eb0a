"""People and applications with rights (issue 15): users of the tenants and their logins
(``users.People``: sessions with access and refresh tokens; the API asks it who a token is),
integrations' API keys (``keys``) and the audit log of every change (``audit``)."""
