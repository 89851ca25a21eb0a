"""The registry's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Changes to these tables go through an Alembic revision in ``migrations/versions`` as well: the
revision is what creates a database, this module is what the code queries. ``test_registry``
checks that the two agree.

Times are integers, milliseconds since the epoch (what Alibaba's APIs report). Secrets are
sealed (``identity.secret_box``), never stored in the clear. JSON columns hold a product's topic
classes and its thing model exactly as imported, so that an export gives the same file back.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

products = sa.Table(
    "products",
    metadata,
    sa.Column("product_key", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("node_type", sa.String(16), nullable=False),
    sa.Column("data_format", sa.String(16), nullable=False),
    sa.Column("dynamic_registration", sa.Boolean, nullable=False),
    sa.Column("product_secret", sa.Text, nullable=False),  # sealed
    sa.Column("topic_classes", sa.JSON, nullable=False),
    sa.Column("thing_model", sa.Text, nullable=True),  # TSL JSON as imported
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("protocol", sa.String(16), nullable=False, server_default="alink"),
    sa.Column("schemaless", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "tenant",
        sa.String(64),
        sa.ForeignKey("tenants.id", ondelete="RESTRICT", name="fk_products_tenant"),
        nullable=False,
        server_default="default",
        index=True,
    ),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "product_key",
        sa.String(32),
        sa.ForeignKey("products.product_key", ondelete="RESTRICT"),
        nullable=False,
    ),
    sa.Column("device_name", sa.String(32), nullable=False),
    sa.Column("device_secret", sa.Text, nullable=False),  # sealed
    sa.Column("nickname", sa.String(64), nullable=False, server_default=""),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("first_online_at", sa.BigInteger, nullable=True),
    sa.Column("last_online_at", sa.BigInteger, nullable=True),
    sa.Column("last_ip", sa.String(64), nullable=False, server_default=""),
    sa.Column("gateway_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="SET NULL")),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("district", sa.String(64), nullable=False, server_default=""),
    sa.UniqueConstraint("product_key", "device_name", name="uq_devices_product_name"),
)
sa.Index("ix_devices_state", devices.c.state)
sa.Index("ix_devices_gateway", devices.c.gateway_id)

device_tags = sa.Table(
    "device_tags",
    metadata,
    sa.Column(
        "device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)
sa.Index("ix_device_tags_key_value", device_tags.c.key, device_tags.c.value)

device_firmware = sa.Table(
    "device_firmware",
    metadata,
    sa.Column(
        "device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("module", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
)

# A thingsboard product's device logs in with one of these, as on ThingsBoard: an access token
# (the token columns) or basic MQTT credentials (the others). The token is found by its digest
# (``SecretBox.digest``); basic credentials by client id and username, "" for one left out, so
# that the unique pair also keeps two devices from sharing a username alone. (NULLs, a token
# row's, are never equal to each other.)
device_credentials = sa.Table(
    "device_credentials",
    metadata,
    sa.Column(
        "device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("token_digest", sa.String(64), nullable=True),
    sa.Column("access_token", sa.Text, nullable=True),  # sealed
    sa.Column("client_id", sa.String(128), nullable=True),
    sa.Column("username", sa.String(128), nullable=True),
    sa.Column("password", sa.Text, nullable=True),  # sealed; NULL when none is asked
    sa.UniqueConstraint("client_id", "username", name="uq_device_credentials_login"),
)
sa.Index("ix_device_credentials_token", device_credentials.c.token_digest, unique=True)

device_groups = sa.Table(
    "device_groups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column(
        "tenant",
        sa.String(64),
        sa.ForeignKey("tenants.id", ondelete="RESTRICT", name="fk_device_groups_tenant"),
        nullable=False,
        server_default="default",
        index=True,
    ),
    # a name is unique within its tenant (0015)
    sa.UniqueConstraint("tenant", "name", name="uq_device_groups_tenant_name"),
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column(
        "group_id",
        sa.Integer,
        sa.ForeignKey("device_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
)

shadows = sa.Table(
    "shadows",
    metadata,
    sa.Column(
        "device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("document", sa.Text, nullable=False),  # twin.shadow.Shadow as JSON
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

device_properties = sa.Table(
    "device_properties",
    metadata,
    sa.Column(
        "device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("identifier", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # JSON
    sa.Column("time", sa.BigInteger, nullable=False),  # ms since the epoch
)

desired_properties = sa.Table(
    "desired_properties",
    metadata,
    sa.Column(
        "device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("document", sa.Text, nullable=False),  # twin.desired.Desired as JSON
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# Rules (``rules.definition``): the text as written, the actions' settings as their JSON, the
# key of their webhooks' signatures sealed.
rules = sa.Table(
    "rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("sql", sa.Text, nullable=False),
    sa.Column("actions", sa.Text, nullable=False),  # JSON: a list of actions
    sa.Column("error_action", sa.Text, nullable=True),  # JSON: one action
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("max_per_second", sa.Float, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),  # sealed
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # runs without acting, its trace saying what it would have done (0008)
    sa.Column("shadow", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "tenant",
        sa.String(64),
        sa.ForeignKey("tenants.id", ondelete="RESTRICT", name="fk_rules_tenant"),
        nullable=False,
        server_default="default",
        index=True,
    ),
    # a name is unique within its tenant (0015)
    sa.UniqueConstraint("tenant", "name", name="uq_rules_tenant_name"),
)

# Alarms (``alarms.model``): at most one open (uncleared) alarm per device and type, which the
# partial unique index ``alarms_open`` holds to; ``severity_rank`` orders and filters by
# severity (0 indeterminate … 4 critical). A device's alarms outlive it (no foreign key): they
# are the town's record of what happened.
alarms = sa.Table(
    "alarms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("product_key", sa.String(32), nullable=False),
    sa.Column("device_name", sa.String(64), nullable=False),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("severity_rank", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cleared", sa.Boolean, nullable=False),
    sa.Column("originator_kind", sa.String(16), nullable=False),
    sa.Column("originator_id", sa.String(64), nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON
    sa.Column("escalation", sa.Text, nullable=True),  # JSON: alarms.model.Escalation
    sa.Column("first_raised_at", sa.BigInteger, nullable=False),
    sa.Column("last_raised_at", sa.BigInteger, nullable=False),
    sa.Column("repeats", sa.Integer, nullable=False),
    sa.Column("acknowledged_at", sa.BigInteger, nullable=True),
    sa.Column("acknowledged_by", sa.String(128), nullable=True),
    sa.Column("cleared_at", sa.BigInteger, nullable=True),
    sa.Column("cleared_by", sa.String(128), nullable=True),
    sa.Column("assignee", sa.String(128), nullable=True),
    sa.Column("escalated_at", sa.BigInteger, nullable=True),
    sa.Column("reminded_at", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
sa.Index(
    "alarms_open",
    alarms.c.product_key,
    alarms.c.device_name,
    alarms.c.type,
    unique=True,
    sqlite_where=sa.not_(alarms.c.cleared),
    postgresql_where=sa.not_(alarms.c.cleared),
)
sa.Index("alarms_by_status", alarms.c.status, alarms.c.severity_rank, alarms.c.last_raised_at)
sa.Index("alarms_by_device", alarms.c.product_key, alarms.c.device_name, alarms.c.last_raised_at)

alarm_notes = sa.Table(
    "alarm_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "alarm_id", sa.Integer, sa.ForeignKey("alarms.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("by", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)
sa.Index("alarm_notes_of", alarm_notes.c.alarm_id, alarm_notes.c.id)

# Where alarms' changes are sent (``services.alarms``): a webhook (signed with the route's
# sealed secret) or e-mail addresses, which alarms and which changes; the last failure kept.
alarm_routes = sa.Table(
    "alarm_routes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # webhook | email
    sa.Column("target", sa.Text, nullable=False),  # a URL, or addresses (JSON list)
    sa.Column("min_severity", sa.String(16), nullable=False),
    sa.Column("types", sa.Text, nullable=False),  # JSON list; empty: every type
    sa.Column("changes", sa.Text, nullable=False),  # JSON list of alarms.model.Change
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("backoff", sa.Float, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),  # sealed
    sa.Column("sent", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_error_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column(
        "tenant",
        sa.String(64),
        sa.ForeignKey("tenants.id", ondelete="RESTRICT", name="fk_alarm_routes_tenant"),
        nullable=False,
        server_default="default",
        index=True,
    ),
    # a name is unique within its tenant (0015)
    sa.UniqueConstraint("tenant", "name", name="uq_alarm_routes_tenant_name"),
)

# Notifications owed (an outbox): one row per route that wants a change, written with the
# change and deleted once it is sent or given up, so that a stop or a crash in between sends
# it at the next start rather than losing it.
alarm_deliveries = sa.Table(
    "alarm_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "route_id",
        sa.Integer,
        sa.ForeignKey("alarm_routes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("change", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON: the change as its stream says it
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Tracked commands (``messages.commands``): one row per command to one device, with each step's
# time and how it ended; a batch's row says what was sent to which devices. Kept for
# ``command_retention_days`` and at most ``command_retention_rows`` rows (queued ones always).
_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # (SQLite's rowid autoincrements)

command_batches = sa.Table(
    "command_batches",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("target", sa.Text, nullable=False),  # JSON: messages.commands.Target
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("service", sa.String(128), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("wait", sa.Float, nullable=True),
    sa.Column("ttl", sa.Float, nullable=True),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.BigInteger, nullable=True),
    sa.Column("product_key", sa.String(32), nullable=False),
    sa.Column("device_name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("service", sa.String(128), nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("call_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("wait", sa.Float, nullable=True),
    sa.Column("ttl", sa.Float, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("sent_at", sa.BigInteger, nullable=True),
    sa.Column("finished_at", sa.BigInteger, nullable=True),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False, server_default=""),
    sa.Column("code", sa.Integer, nullable=True),
    sa.Column("output", sa.Text, nullable=True),  # JSON
    sa.Column("message", sa.Text, nullable=False, server_default=""),
)
sa.Index("ix_commands_device", commands.c.product_key, commands.c.device_name, commands.c.id)
sa.Index("ix_commands_state", commands.c.state)
sa.Index("ix_commands_batch", commands.c.batch_id)
sa.Index("ix_commands_created", commands.c.created_at)
scenes = sa.Table(
    "scenes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # JSON: the scene as written
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),  # sealed: its webhooks' key
    sa.Column("token", sa.Text, nullable=False),  # sealed: its trigger token
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column(
        "tenant",
        sa.String(64),
        sa.ForeignKey("tenants.id", ondelete="RESTRICT", name="fk_scenes_tenant"),
        nullable=False,
        server_default="default",
        index=True,
    ),
    # a name is unique within its tenant (0015)
    sa.UniqueConstraint("tenant", "name", name="uq_scenes_tenant_name"),
)

scene_waits = sa.Table(
    "scene_waits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "scene_id", sa.Integer, sa.ForeignKey("scenes.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("due", sa.BigInteger, nullable=False),  # ms: when the run goes on
    sa.Column("step", sa.Integer, nullable=False),  # the step it goes on with
    sa.Column("data", sa.Text, nullable=False),  # JSON: the trigger's data
)

# A product's alarm conditions (``rules.alarm_conditions``): one per product and alarm type.
alarm_conditions = sa.Table(
    "alarm_conditions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("product_key", sa.String(64), nullable=False),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # JSON: the condition as written
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("product_key", "type", name="uq_alarm_conditions_product_type"),
)

# A group's tags: thresholds its devices' alarm conditions may read (after a device's own).
group_tags = sa.Table(
    "group_tags",
    metadata,
    sa.Column(
        "group_id",
        sa.Integer,
        sa.ForeignKey("device_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

# People (``identity``): tenants, users and their sessions, API keys, the audit log. Names of
# users are unique across tenants (one login form); a key is found by its public ``lookup``
# and proven by the SHA-256 of its secret (keys are random, so a fast hash is enough); a
# session keeps the SHA-256 of its current refresh token (a refresh rotates it). ``groups``
# is a JSON list of group names the user or key is limited to; NULL: not limited.
tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "tenant", sa.String(64), sa.ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False
    ),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("groups", sa.Text, nullable=True),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("password_changed_at", sa.BigInteger, nullable=False),
)

user_sessions = sa.Table(
    "user_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("refresh_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("used_at", sa.BigInteger, nullable=False),
    sa.Column("address", sa.String(64), nullable=False, server_default=""),
    sa.Column("agent", sa.String(256), nullable=False, server_default=""),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)
sa.Index("ix_user_sessions_user", user_sessions.c.user_id)

# Failed logins per username (``identity.lockout``), kept so that a restart does not forget a
# lock or a count: keyed by the SHA-256 of the name as typed (a user's or not), ``failures``
# a JSON list of the times (ms) within the window, ``locked_until`` ms (0: not locked).
login_lockouts = sa.Table(
    "login_lockouts",
    metadata,
    sa.Column("name_hash", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Text, nullable=False),
    sa.Column("locked_until", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "tenant", sa.String(64), sa.ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False
    ),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("lookup", sa.String(32), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("groups", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("used_at", sa.BigInteger, nullable=True),
)

# Every change made through the API, and every login (who, what, when, from where).
# ``tenant`` NULL: the admin token's change of something of no tenant.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), nullable=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("actor_kind", sa.String(16), nullable=False),  # token | user | key | anonymous
    sa.Column("address", sa.String(64), nullable=False, server_default=""),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False, server_default=""),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text, nullable=True),  # JSON
)
sa.Index("ix_audit_log_tenant_at", audit_log.c.tenant, audit_log.c.at)
