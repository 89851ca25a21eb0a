"""The command line: ``hongshan serve``, ``hongshan passwd``, and the API client commands
``hongshan product|device|group`` (``cli_api``), ``hongshan history`` (``cli_history``),
``hongshan rule`` (``cli_rules``), ``hongshan alarm`` (``cli_alarms``), ``hongshan command``
(``cli_commands``), ``hongshan scene`` (``cli_scenes``), ``hongshan user`` (``cli_people``),
``hongshan key`` (``cli_keys``), ``hongshan audit`` (``cli_audit``) and ``hongshan tenant``
(``cli_tenants``)."""

from __future__ import annotations

import asyncio
import getpass
import resource
from typing import Any

import click

from hongshan import __version__
from hongshan.config import load_settings
from hongshan.errors import HongshanError


def _raise_open_files_limit() -> None:
    # Every device is a socket: lift the soft limit on open files to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run_loop(main: Any, event_loop: str = "uvloop") -> None:
    """``main`` on uvloop (where it installs), or on asyncio's own loop when asked."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


@click.group()
@click.version_option(__version__, prog_name="hongshan")
def main() -> None:
    """Hongshan: an open IoT platform for a smart town."""


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file.")
@click.option("--data-dir", help="Where data is kept [./hongshan-data].")
@click.option("--host", help="Address to listen on [0.0.0.0].")
@click.option("--mqtt-port", type=int, help="MQTT over TCP [1883]; 0 picks a free port.")
@click.option("--http-port", type=int, help="HTTP API and console [8080]; 0 picks a free port.")
@click.option("--ws-port", type=int, help="MQTT over WebSocket (off unless set).")
@click.option("--tls-port", type=int, help="MQTT over TLS (off unless set).")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate chain.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key.")
@click.option(
    "--allow-anonymous/--no-allow-anonymous",
    default=None,
    help="Admit clients without credentials (a sandbox only).",
)
@click.option("--password-file", type=click.Path(dir_okay=False), help="Users file.")
@click.option("--acl-file", type=click.Path(dir_okay=False), help="ACL file (Mosquitto syntax).")
@click.option("--max-packet-size", type=int, help="Largest packet a client may send [1048576].")
@click.option("--max-inflight", type=int, help="Receive Maximum each way [100].")
@click.option("--max-queued-messages", type=int, help="Queued messages per session [1000].")
@click.option("--max-retained-messages", type=int, help="Retained topics kept [1000000].")
@click.option("--max-keepalive", type=int, help="Longest keep-alive granted, seconds [65535].")
@click.option("--connect-timeout", type=float, help="Seconds to send CONNECT [10].")
@click.option("--topic-alias-maximum", type=int, help="Topic aliases a client may set [10].")
@click.option("--session-expiry-max", type=int, help="Cap on Session Expiry, seconds.")
@click.option("--sys-interval", type=float, help="Seconds between $SYS updates; 0 is off [10].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="JSON: one object a line [text]."
)
@click.option(
    "--event-loop",
    type=click.Choice(["uvloop", "asyncio"]),
    help="The event loop: asyncio answers long API requests more evenly [uvloop].",
)
@click.option("--metrics-port", type=int, help="Serve /metrics here, with no token [off].")
@click.option("--metrics-host", help="Address of the metrics listener [127.0.0.1].")
@click.option("--registry-url", help="sqlite:///FILE or postgresql://… [DATA_DIR/registry.db].")
@click.option("--secret-key-file", help="Key sealing device secrets [DATA_DIR/secret.key].")
@click.option("--device-clock-skew", type=float, help="Max age of a signed timestamp, s [off].")
@click.option("--time-zone", help="The town's time zone, e.g. Asia/Shanghai [UTC].")
@click.option("--history-url", help="postgresql://… for the history [DATA_DIR/history.db].")
@click.option("--history-raw-days", type=float, help="Days values are kept [for ever].")
@click.option("--history-rollup-days", type=float, help="Days aggregates are kept [for ever].")
@click.option(
    "--require-tls-for-securemode2/--no-require-tls-for-securemode2",
    default=None,
    help="Refuse a device's securemode=2 (TLS) CONNECT on plain TCP [off].",
)
@click.option("--max-topic-length", type=int, help="Longest topic name or filter, bytes [4096].")
@click.option("--max-topic-levels", type=int, help="Most levels in a topic [128].")
@click.option(
    "--max-pending-connections-per-address",
    type=int,
    help="Connections one address may hold before CONNECT [64]; 0 is off.",
)
@click.option("--max-retained-bytes", type=int, help="Bytes of retained messages [268435456].")
@click.option("--smtp-host", help="SMTP server for alarms' e-mail [none: e-mail routes refused].")
@click.option("--smtp-port", type=int, help="Its port [25].")
@click.option("--smtp-from", help="The From of alarms' e-mail [hongshan@localhost].")
@click.option("--smtp-username", help="Its login (the password: smtp_password, never a flag).")
@click.option("--smtp-starttls/--no-smtp-starttls", default=None, help="STARTTLS (587) [off].")
@click.option("--smtp-tls/--no-smtp-tls", default=None, help="Implicit TLS (465) [off].")
@click.option(
    "--command-max-in-flight", type=int, help="A batch's commands unanswered at once [200]."
)
@click.option("--command-rate", type=float, help="A batch's commands started a second [1000].")
@click.option("--map-tile-url", help="The console map's XYZ tiles [none: the demo district].")
@click.option("--map-tile-attribution", help="The credit line its tiles ask for.")
@click.option("--map-zoom", type=int, help="The console map's first zoom [16].")
def serve(config_file: str | None, **flags: Any) -> None:
    """Run the platform: MQTT broker and HTTP API in one process."""
    from hongshan.app import serve as serve_platform
    from hongshan.log_lines import configure as configure_logging

    try:
        settings = load_settings(config_file, flags=flags)
    except HongshanError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    _raise_open_files_limit()
    try:
        _run_loop(serve_platform(settings), settings.event_loop)
    except HongshanError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        # most often a port already taken, by another broker on 1883 or a second Hongshan
        raise click.ClickException(
            f"{exc.strerror or exc}; choose other ports with --mqtt-port/--http-port"
        ) from None


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("username")
@click.option("--password", help="The password (asked for when not given).")
@click.option("--delete", is_flag=True, help="Remove the user instead.")
@click.option(
    "--tenant",
    help="The user's tenant: it is delivered and may publish only its tenant's topics "
    "(its products' devices', and tenants/TENANT/#). '' makes it the platform's again; "
    "left out, a user keeps the one it had.",
)
def passwd(
    file: str, username: str, password: str | None, delete: bool, tenant: str | None
) -> None:
    """Add, change or delete a user in a users file (argon2id hashes)."""
    from hongshan.identity.passwords import KEEP, delete_user, set_password

    try:
        if delete:
            if not delete_user(file, username):
                raise click.ClickException(f"no user {username!r} in {file}")
            return
        if password is None:
            password = getpass.getpass(f"Password for {username}: ")
            if getpass.getpass("Again: ") != password:
                raise click.ClickException("the passwords differ")
        set_password(file, username, password, tenant=KEEP if tenant is None else tenant or None)
    except HongshanError as exc:
        raise click.ClickException(str(exc)) from None


def _add_api_commands() -> None:
    from hongshan.cli_alarms import alarm
    from hongshan.cli_api import device, group, product
    from hongshan.cli_audit import audit
    from hongshan.cli_commands import command
    from hongshan.cli_history import history
    from hongshan.cli_keys import key
    from hongshan.cli_people import user
    from hongshan.cli_rules import rule
    from hongshan.cli_scenes import scene
    from hongshan.cli_tenants import tenant

    for each in (
        product,
        device,
        group,
        history,
        rule,
        alarm,
        command,
        scene,
        user,
        key,
        audit,
        tenant,
    ):
        main.add_command(each)


_add_api_commands()
