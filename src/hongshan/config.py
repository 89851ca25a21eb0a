"""Configuration: a TOML file, then ``HONGSHAN_*`` environment variables, then command-line flags;
each later source wins over the earlier ones.

Every key of ``Settings`` is accepted in all three places under the same name: ``mqtt_port`` in
the file's top level (or its ``[hongshan]`` table), ``HONGSHAN_MQTT_PORT`` in the environment and
``--mqtt-port`` on the command line.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from hongshan.errors import ConfigError


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = "./hongshan-data"
    host: str = "0.0.0.0"
    mqtt_port: int = 1883
    http_port: int = 8080
    ws_port: int | None = None  # MQTT over WebSocket (subprotocol "mqtt"); off when unset
    tls_port: int | None = None  # MQTT over TLS; needs tls_cert and tls_key
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_anonymous: bool = False
    password_file: str | None = None  # lines "username:$argon2id$..." (hongshan passwd)
    acl_file: str | None = None  # Mosquitto acl_file syntax; without one, all is allowed
    max_packet_size: int = 1_048_576  # largest packet a client may send, bytes
    max_inflight: int = 100  # Receive Maximum: unacknowledged QoS 1/2 messages each way
    max_queued_messages: int = 1000  # per session, beyond the in-flight window
    max_retained_messages: int = 1_000_000  # topics with a retained message, broker-wide
    max_keepalive: int = 65535  # seconds; longer requests get Server Keep Alive (5.0)
    connect_timeout: float = 10.0  # seconds a new connection has to send CONNECT
    # aliases a 5.0 client may set toward us; each holds a topic (max_topic_length) in memory
    topic_alias_maximum: int = 10
    sys_interval: float = 10.0  # seconds between $SYS/broker/... updates; 0 turns them off
    session_expiry_max: int = 0xFFFFFFFF  # cap on a client's Session Expiry Interval, seconds
    log_level: str = "info"
    # the device registry: sqlite:///FILE or postgresql://…; default: registry.db in data_dir
    registry_url: str | None = None
    # the key that seals device secrets; default: secret.key in data_dir (created on first start).
    # HONGSHAN_SECRET_KEY, when set, is the key itself and wins over any file.
    secret_key_file: str | None = None
    # refuse a signed CONNECT (or sub-device signature) further than this from now, s (off)
    device_clock_skew: float | None = None
    # the town's time zone: its days are the history's day rollups (an IANA name)
    time_zone: str = "UTC"
    # the town's place, degrees north and east: where a scene's sun trigger watches the sun
    # unless it names a place of its own (unset: such a trigger is refused)
    latitude: float | None = None
    longitude: float | None = None
    # the history: postgresql://… (add ?search_path=SCHEMA for a schema of its own); default:
    # history.db in data_dir (SQLite)
    history_url: str | None = None
    # how long history is kept unless a product says otherwise, days (unset: for ever)
    history_raw_days: float | None = None  # values, events, status changes, commands
    history_rollup_days: float | None = None  # minute and hour aggregates
    # -- devices: gateways and device security (issue 12) --
    # refuse a device's signed CONNECT that says securemode=2 (TLS) on a plain TCP listener
    # (0x86 / 3.1.1 return code 4); off by default, as before, since Alibaba's endpoint knows
    # its own TLS and some firmware sends securemode=2 regardless
    require_tls_for_securemode2: bool = False
    # -- lifecycle: what an HTTP client may hold (slowloris); see http_guard --
    # seconds to send a request's head (from connecting, or from the request's first byte):
    # 408 and closed after
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0  # seconds to send a request's body, from its head's end
    http_keepalive_timeout: float = 5.0  # seconds a connection may sit idle between requests
    # open HTTP connections from one address; more are answered 503 and closed
    http_max_connections_per_address: int = 64
    # -- the broker's memory and connections (issue 12) --
    # The longest topic name or filter a client may use, bytes of UTF-8 (the spec allows 65,535;
    # each topic alias and remembered topic holds one), and its most levels (EMQX's default).
    # A PUBLISH over either gets 0x90 (5.0), a SUBSCRIBE 0x8F (5.0) / 0x80 (3.1.1).
    max_topic_length: int = 4096
    max_topic_levels: int = 128
    # Connections from one address still waiting to be CONNECTed (connect_timeout bounds each
    # one's wait); past it a new one is closed at once, so one host's slow or silent clients
    # cannot hold the server's sockets. 0 turns the cap off.
    max_pending_connections_per_address: int = 64
    # The bytes of retained messages (topics and payloads) kept in memory, besides their count
    # (max_retained_messages): past it a new or larger retained message is delivered, not kept.
    max_retained_bytes: int = 256 * 1024 * 1024
    # -- a session's memory (issue 12) --
    # Each session's subscriptions, by count and by the bytes of their filters: past either a
    # new filter gets SUBACK 0x97 Quota exceeded (3.1.1: 0x80). Alibaba lets a device subscribe
    # to 100 topics; a gateway's sub-devices' topics and the automatic subscriptions are the
    # platform's (derived), not the session's, and are not counted. 0 turns a cap off.
    max_subscriptions_per_client: int = 1000
    max_subscription_bytes_per_client: int = 1024 * 1024
    # The bytes (topic, payload, forwarded properties) of a session's queued messages, besides
    # their count (max_queued_messages): past it the oldest queued QoS 0 messages make room,
    # else the newcomer is dropped. 0 turns it off.
    max_queued_bytes: int = 16 * 1024 * 1024
    # Sessions the broker keeps, connected or not: past it a CONNECT asking for a new
    # persistent session gets CONNACK 0x97 (3.1.1: 3, server unavailable), except a device's
    # (the registry bounds those). 0 turns it off.
    max_sessions: int = 100_000
    # -- the HTTP guard's responding phase (issue 12 review) --
    # seconds an HTTP client may take nothing of a response being sent (nginx's send_timeout:
    # between two reads, not for the whole response); then the connection is cut, so a client
    # that asks for a large CSV and never reads does not hold it open
    http_send_timeout: float = 60.0
    # -- the live API (/api/ws, docs/api-live.md) --
    # messages of earlier deliveries waiting for one socket; a delivery that finds more drops
    # the socket (closed 1013: too slow), so a browser that reads too slowly never holds the
    # platform back; one delivery may bring more (a burst) to a socket that reads it
    ws_queue_limit: int = 1000
    # seconds between two deliveries to the live sockets at most: what happens meanwhile goes
    # to each socket as one frame (a batch), so a socket costs a send per interval, not one
    # per message. 0: a delivery each time the loop comes round
    ws_batch_interval: float = 0.05
    ws_max_subscriptions: int = 100  # subscriptions one socket may hold
    ws_max_sockets_per_principal: int = 16  # open sockets of one user, key or token
    ws_max_message_size: int = 4096  # bytes of one client message; larger: closed 1009
    # seconds between the server's pings, and how long a pong may take before the socket is
    # closed as dead (1011)
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    # proxies (addresses or networks, "10.0.0.0/8") whose X-Forwarded-For names the client in
    # the audit log; any other peer's header is ignored (a client could write anything there).
    # In the environment: comma-separated
    trusted_proxies: list[str] = []
    # -- alarms --
    # a cleared alarm is kept this many days, then forgotten with its notes (an open one is
    # kept whatever its age)
    alarm_retention_days: float = 365.0
    # -- the audit log: every change through the API, kept this many days --
    audit_retention_days: float = 365.0
    # -- alarms' e-mail notifications (routes of kind "email") --
    # the SMTP server they are sent through (unset: e-mail routes are refused), its port, the
    # From address, a login if it wants one, and whether to upgrade the connection with
    # STARTTLS (587); port 465 (implicit TLS) is used with smtp_tls
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "hongshan@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    # -- tracked commands (issue 14) --
    # a command to many devices (a group, a product, a tag, a district), and the commands queued
    # for devices that come back, go out paced: at most this many sent and not yet answered at
    # once, and at most this many started a second
    command_max_in_flight: int = 200
    command_rate: float = 1000.0
    # a command sent without waiting for its answer (an async service, a set not waited for) is
    # timed out when no reply came in this many seconds; a reply after that still completes it
    command_reply_timeout: float = 300.0
    # finished commands are kept this many days, and at most this many rows (the newest);
    # commands queued for an offline device are kept until they are sent, expire or are cancelled
    command_retention_days: float = 30.0
    command_retention_rows: int = 1_000_000
    # -- operating it (issue 15) --
    # GET /metrics (Prometheus) is served by the API behind its token (a viewer or above);
    # with metrics_port set it is served there instead, with no token, bound to metrics_host
    # (only this machine, unless told otherwise: whoever reaches that port reads the figures)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # the log's lines: "text" (for a person) or "json" (one object a line, for a collector:
    # ts, level, logger, message, exception, and the device and request id when known)
    log_format: str = "text"
    # the event loop: "uvloop" (the broker's rates are measured on it) or "asyncio" (the
    # standard library's: under fifty API clients the slowest answers of requests that take
    # long to make, a searched list or a page of raw values, come several times sooner;
    # bench/RESULTS.md, issue 15)
    event_loop: str = "uvloop"
    # -- people: users' logins (issue 15) --
    # an access token (a JWT) is valid this many minutes; a session (its refresh token) days
    access_token_minutes: float = 15.0
    refresh_token_days: float = 7.0
    # failed logins: this many for one username within login_failure_window_minutes lock the
    # name for login_lockout_minutes; login_max_failures_per_address from one address, it
    login_max_failures_per_user: int = 5
    login_max_failures_per_address: int = 20
    login_failure_window_minutes: float = 15.0
    login_lockout_minutes: float = 15.0
    # the first start only (no user yet): the password of the user admin that is made then;
    # unset, one is generated and said once in the log. HONGSHAN_ADMIN_PASSWORD, not a flag.
    admin_password: str | None = None
    # ... or its argon2id hash instead (as 'hongshan passwd' writes it after "admin:"): the
    # password itself kept out of the platform's environment. HONGSHAN_ADMIN_PASSWORD_HASH.
    admin_password_hash: str | None = None
    # -- the console's map (web/, served at /) --
    # an XYZ tile URL template ("https://tiles.example/{z}/{x}/{y}.png") or a raster PMTiles
    # archive (".../town.pmtiles") for a real town's streets, and the line of credit its
    # owner asks for; empty: the demo district shipped with
    # Hongshan (web/district.geojson), drawn with no tile server. The map opens at the town's
    # latitude/longitude (else the district's) at map_zoom
    map_tile_url: str = ""
    map_tile_attribution: str = ""
    map_zoom: int = 16


def _coerce(name: str, raw: str) -> Any:
    field = next(f for f in msgspec.structs.fields(Settings) if f.name == name)
    text = raw.strip()
    if field.type is bool:
        if text.lower() in {"1", "true", "yes", "on"}:
            return True
        if text.lower() in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"HONGSHAN_{name.upper()}: expected a boolean, got {raw!r}")
    if field.type in (int, int | None):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(
                f"HONGSHAN_{name.upper()}: expected an integer, got {raw!r}"
            ) from None
    if field.type == list[str]:
        return [part.strip() for part in text.split(",") if part.strip()]
    if field.type in (float, float | None):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"HONGSHAN_{name.upper()}: expected a number, got {raw!r}") from None
    return raw


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in msgspec.structs.fields(Settings))


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the three sources (file < environment < flags) into validated Settings."""
    values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        table = document.get("hongshan", document)
        values.update({k.replace("-", "_"): v for k, v in table.items()})
    names = field_names()
    env = os.environ if environ is None else environ
    for name in names:
        raw = env.get(f"HONGSHAN_{name.upper()}")
        if raw is not None:
            values[name] = _coerce(name, raw)
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        settings = msgspec.convert(values, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"configuration: {exc}") from None
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    for name in ("mqtt_port", "http_port", "ws_port", "tls_port", "smtp_port", "metrics_port"):
        port = getattr(s, name)
        if port is not None and not 0 <= port <= 65535:
            raise ConfigError(f"{name}: {port} is not a TCP port")
    if s.log_format not in ("text", "json"):
        raise ConfigError(f"log_format: {s.log_format!r} is neither 'text' nor 'json'")
    if s.event_loop not in ("uvloop", "asyncio"):
        raise ConfigError(f"event_loop: {s.event_loop!r} is neither 'uvloop' nor 'asyncio'")
    if s.smtp_starttls and s.smtp_tls:
        raise ConfigError("smtp_starttls and smtp_tls: one or the other (587 or 465)")
    if s.admin_password is not None and s.admin_password_hash is not None:
        raise ConfigError("admin_password and admin_password_hash: one or the other")
    if (s.smtp_username is None) != (s.smtp_password is None):
        raise ConfigError("smtp_username and smtp_password: both or neither")
    if s.tls_port is not None and not (s.tls_cert and s.tls_key):
        raise ConfigError("tls_port needs tls_cert and tls_key")
    if not 1 <= s.max_inflight <= 65535:
        raise ConfigError("max_inflight: must be 1..65535")
    if not 0 <= s.topic_alias_maximum <= 65535:
        raise ConfigError("topic_alias_maximum: must be 0..65535")
    if s.max_packet_size < 64:
        raise ConfigError("max_packet_size: must be at least 64 bytes")
    if s.max_retained_messages < 0:
        raise ConfigError("max_retained_messages: must not be negative")
    for proxy in s.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"trusted_proxies: {proxy!r} is no address or network (10.0.0.5, 10.0.0.0/8)"
            ) from None
    if s.device_clock_skew is not None and s.device_clock_skew <= 0:
        raise ConfigError("device_clock_skew: must be positive (leave it unset for no check)")
    if s.max_queued_messages < 0:
        raise ConfigError("max_queued_messages: must not be negative")
    if s.command_max_in_flight < 1:
        raise ConfigError("command_max_in_flight: must be at least 1")
    for name in (
        "command_rate",
        "command_retention_days",
        "command_reply_timeout",
        "alarm_retention_days",
        "access_token_minutes",
        "refresh_token_days",
        "login_failure_window_minutes",
        "login_lockout_minutes",
        "audit_retention_days",
    ):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name}: must be positive")
    for name in ("login_max_failures_per_user", "login_max_failures_per_address"):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")
    if not 0 <= s.map_zoom <= 22:
        raise ConfigError(f"map_zoom: {s.map_zoom} is out of 0..22 (a tile zoom level)")
    if s.map_tile_url and not s.map_tile_url.startswith(("https://", "http://", "/")):
        raise ConfigError("map_tile_url: an http(s) URL template with {z}, {x} and {y}")
    if s.command_retention_rows < 1:
        raise ConfigError("command_retention_rows: must be at least 1")
    if (s.latitude is None) != (s.longitude is None):
        raise ConfigError("latitude and longitude: set both (the town's place) or neither")
    if s.latitude is not None and not -90 <= s.latitude <= 90:
        raise ConfigError(f"latitude: {s.latitude} is out of -90..90")
    if s.longitude is not None and not -180 <= s.longitude <= 180:
        raise ConfigError(f"longitude: {s.longitude} is out of -180..180")
    for name in (
        "http_header_timeout",
        "http_body_timeout",
        "http_keepalive_timeout",
        "http_send_timeout",
    ):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name}: must be a positive number of seconds")
    if s.http_max_connections_per_address < 1:
        raise ConfigError("http_max_connections_per_address: must be at least 1")
    for name in (
        "ws_queue_limit",
        "ws_max_subscriptions",
        "ws_max_sockets_per_principal",
        "ws_max_message_size",
    ):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")
    for name in ("ws_ping_interval", "ws_ping_timeout"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name}: must be a positive number of seconds")
    if not 0 <= s.ws_batch_interval <= 10:
        raise ConfigError("ws_batch_interval: must be 0 to 10 seconds")
    if not 1 <= s.max_topic_length <= 65535:
        raise ConfigError("max_topic_length: must be 1..65535 bytes (MQTT-4.7.3-3)")
    if s.max_topic_levels < 1:
        raise ConfigError("max_topic_levels: must be at least 1")
    if s.max_retained_bytes < 0:
        raise ConfigError("max_retained_bytes: must not be negative")
    if s.max_pending_connections_per_address < 0:
        raise ConfigError("max_pending_connections_per_address: must not be negative (0: off)")
    for name in (
        "max_subscriptions_per_client",
        "max_subscription_bytes_per_client",
        "max_queued_bytes",
        "max_sessions",
    ):
        if getattr(s, name) < 0:
            raise ConfigError(f"{name}: must not be negative (0: off)")
