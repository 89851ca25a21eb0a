"""People (issue 15): users of the tenants, their logins (sessions with access and refresh
tokens) and roles. ``users.People`` owns them; the API asks it who a token is."""
