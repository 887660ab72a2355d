"""The `depictiod` command: check, scan, serve, manage users, back up, restore and migrate."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from catalog import Catalog, CatalogError
from config import (
    ConfigError,
    Project,
    Settings,
    check_workflow_overrides,
    environment_names,
    load_projects,
    load_settings,
)

if TYPE_CHECKING:
    from depictiod.progress import ScanProgressBar
    from ingestor import Ingestor, ProjectScan

logger = logging.getLogger("depictiod")

# How often `depictiod scan` waits for files that are still being written.
_SETTLE_ROUNDS = 5
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# Seconds that a stop waits for open responses, such as a download a client stopped
# reading, before it cancels them.
SHUTDOWN_GRACE_SECONDS = 10
# Roles of `depictiod serve`: what one process of a DuckLake catalog does.
ROLES = ("all", "api", "ingest")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command is None:
        parser.print_help()
        return 2
    # The catalog contains password hashes and unpublished results, so files the service
    # creates are readable by its own user only.
    os.umask(0o077)
    try:
        settings = load_settings(arguments.config)
        _configure_logging(arguments.log_level or settings.server.log_level)
        # Managing users needs no project file, so a broken one does not block it.
        # `check` reports a missing location as a problem. The service starts without it, and
        # its scans report the location until it is back (an unmounted share, say).
        # A backup checks that its folder is outside the workflow locations, and a missing one contains nothing.
        allow_missing = arguments.command in ("serve", "scan", "backup")
        # Restoring a catalog needs no project file, so a broken one does not block it either.
        without_projects = arguments.command in ("users", "restore", "migrate")
        projects = [] if without_projects else load_projects(settings.projects, None, allow_missing)
        problems = check_workflow_overrides(settings, projects)
        if problems:
            raise ConfigError(problems)
    except ConfigError as error:
        print(f"depictiod: {error}", file=sys.stderr)
        return 1

    handlers = {
        "check": _check,
        "scan": _scan,
        "serve": _serve,
        "users": _users,
        "backup": _backup,
        "restore": _restore,
        "migrate": _migrate,
    }
    try:
        return handlers[arguments.command](arguments, settings, projects)
    except CatalogError as error:
        print(f"depictiod: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depictiod",
        description="Watch workflow output folders, aggregate them into DuckDB tables and serve Depictio's v1 API.",
        epilog="Every setting can be overridden by an environment variable: " + ", ".join(environment_names()),
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="overrides server.log_level")
    commands = parser.add_subparsers(dest="command")
    for name, help_text in (
        ("check", "check depictio.toml and every project file; print all problems"),
        ("scan", "scan and aggregate every project once, print a summary and exit"),
        ("serve", "serve the API until stopped with Ctrl-C, scanning every project at start and on schedule"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--config", default="depictio.toml", help="path of the settings file (default: depictio.toml)"
        )
        if name == "serve":
            command.add_argument("--host", help="address to listen on; overrides server.host")
            command.add_argument("--port", type=int, help="TCP port to listen on; overrides server.port")
            command.add_argument(
                "--role",
                choices=list(ROLES),
                default="all",
                help="all: scan and serve (default); api: serve only; ingest: scan and write only, no HTTP. "
                'api and ingest need catalog.backend = "ducklake"',
            )
    _add_users_parser(commands)
    _add_backup_parsers(commands)
    _add_migrate_parser(commands)
    return parser


def _add_users_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser(
        "users",
        help="add, list and change users in the catalog while no service runs on it",
        description="Passwords are read from a prompt, or as one line from standard input when it is not a terminal.",
    )
    config_help = "path of the settings file (default: depictio.toml)"
    users.add_argument("--config", default="depictio.toml", help=config_help)
    actions = users.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a user with a password read from a prompt or standard input")
    add.add_argument("email", help="the new user's e-mail address, which is also their sign-in name")
    add.add_argument("--admin", action="store_true", help="make the new user an administrator")
    actions.add_parser("list", help="list every user")
    set_admin = actions.add_parser("set-admin", help="grant or withdraw a user's administrator rights")
    set_admin.add_argument("email", help="the user's e-mail address")
    set_admin.add_argument("value", choices=["true", "false"], help="true grants the rights, false withdraws them")
    reset = actions.add_parser(
        "reset-password", help="set a new password read from a prompt or standard input, and revoke every token"
    )
    reset.add_argument("email", help="the user's e-mail address")
    for action in actions.choices.values():
        # --config may follow the action too; SUPPRESS keeps a value given before the action.
        action.add_argument("--config", default=argparse.SUPPRESS, help=config_help)


def _add_backup_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config_help = "path of the settings file (default: depictio.toml)"
    backup = commands.add_parser(
        "backup",
        help="write a consistent backup of the catalog into a new or empty folder, even while the service runs",
        description=(
            "While a service holds the catalog, the backup is written by that service, which needs an "
            "administrator's token (--token-file, or the environment variable DEPICTIO_TOKEN). Otherwise the "
            "command opens the catalog itself."
        ),
    )
    backup.add_argument("--to", required=True, help="the backup folder: new, or empty; its parent must exist")
    backup.add_argument("--config", default="depictio.toml", help=config_help)
    backup.add_argument("--token-file", help="file whose first line is an administrator's token for the service")
    backup.add_argument("--url", help="address of the running service (default: http://<server.host>:<server.port>)")
    restore = commands.add_parser(
        "restore",
        help="check a backup and put it in place of the catalog, while no service runs on it",
        description=(
            "The replaced catalog file, its WAL and its uploads folder are kept under their names "
            "followed by .before-restore."
        ),
    )
    restore.add_argument("--from", dest="source", required=True, help="the backup folder")
    restore.add_argument("--config", default="depictio.toml", help=config_help)
    restore.add_argument("--check", action="store_true", help="only check the backup; change nothing")
    restore.add_argument(
        "--revoke-tokens",
        action="store_true",
        help="revoke every token of the restored catalog, so every user and script must sign in again",
    )


def _add_migrate_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="copy the catalog to a DuckDB file or a DuckLake catalog and compare every table, while no service runs",
        description=(
            "The source is the catalog of the settings file; the target must be empty. Relative paths start at "
            "the current folder. The password of --postgres is best left to PGPASSWORD or ~/.pgpass."
        ),
    )
    migrate.add_argument("--config", default="depictio.toml", help="path of the settings file (default: depictio.toml)")
    migrate.add_argument("--to", required=True, choices=["duckdb", "ducklake"], help="the backend of the target")
    migrate.add_argument(
        "--path",
        help="catalog.path of the target: the DuckDB file, or with ducklake the base of the uploads and spill "
        "folders (default: catalog.path of the settings file)",
    )
    migrate.add_argument("--postgres", help="with --to ducklake: libpq connection string of the catalog database")
    migrate.add_argument(
        "--data-path", help="with --to ducklake: new or empty folder, or s3://bucket/prefix, for the Parquet files"
    )
    migrate.add_argument(
        "--metadata-schema", help="with --to ducklake: PostgreSQL schema of the DuckLake metadata (default: public)"
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    # APScheduler logs every job run at INFO; depictiod logs its own reconcile lines.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _check(arguments: argparse.Namespace, settings: Settings, projects: list[Project]) -> int:
    workflows = sum(len(project.workflows) for project in projects)
    collections = sum(len(workflow.data_collections) for project in projects for workflow in project.workflows)
    for note in _notes(projects):
        print(f"note: {note}")
    print(
        f"{settings.source_file}: valid; {len(projects)} projects, {workflows} workflows, {collections} data collections"
    )
    return 0


def _notes(projects: list[Project]) -> list[str]:
    """List what a valid configuration still leaves without a table, so it is no surprise."""
    notes = []
    for project in projects:
        joined = {join.id for join in project.joins if join.persist}
        for join in project.joins:
            if not join.persist:
                notes.append(f"{project.name} / joins / {join.name}: persist is false, so depictiod does not build it")
        for workflow in project.workflows:
            for collection in workflow.data_collections:
                config = collection.config
                where = f"{project.name} / {workflow.name} / {collection.data_collection_tag}"
                if collection.id in joined:
                    continue  # The collection of a persisted join, which depictiod builds.
                if config.source != "native":
                    notes.append(
                        f"{where}: source {config.source!r} collections are not built by depictiod yet; no table"
                    )
                elif config.type not in ("table", "image"):
                    notes.append(f"{where}: {config.type} files are registered but not aggregated into a table")
    return notes


def _scan(arguments: argparse.Namespace, settings: Settings, projects: list[Project]) -> int:
    from depictiod.progress import progress_bar
    from ingestor import Ingestor

    # DuckDB allows one writing process per file, so opening fails while a service runs on it.
    catalog = Catalog(settings.catalog.path, settings.catalog)
    ingestor = Ingestor(catalog, settings, projects)
    signals = _Interrupts()
    try:
        # The bar goes to standard error, so the summary on standard output stays plain text.
        with signals.catch(), progress_bar(ingestor, projects, sys.stderr) as bar:
            results = _scan_until_settled(ingestor, settings, bar)
    except (KeyboardInterrupt, RuntimeError):
        # DuckDB turns an interrupt during a query into RuntimeError("Query interrupted").
        if not signals.received:
            raise
        print("depictiod: scan interrupted; the next scan starts from the catalog as it is now", file=sys.stderr)
        return 130
    finally:
        catalog.close()

    failed = 0
    print(f"{'project':<32} {'collection':<32} {'files':>6} {'failed':>6} {'rows':>9}  outcome")
    for result in results:
        files = {c.collection_id: c for scan in result.workflows for c in scan.collections}
        for table in [*result.tables, *result.joins]:
            found = files.get(table.collection_id)
            count = found.files if found else 0
            failures = table.files_failed + (found.empty_files if found else 0) + int(table.outcome == "error")
            failed += failures
            print(
                f"{result.name[:32]:<32} {table.tag[:32]:<32} {count:>6} {failures:>6} {table.rows:>9}  {table.outcome}"
            )
        for scan in result.workflows:
            for warning in scan.warnings:
                print(f"warning: {result.name} / {scan.workflow_name}: {warning}")
    if len(results) < len(projects):
        failure = catalog.store.write_failure
        if failure is not None:
            print(
                f"error: {failure}; {len(projects) - len(results)} projects were not scanned. Make room on the "
                "disk or make the file system writable, then scan again",
                file=sys.stderr,
            )
            return 1
        print(
            f"error: {len(projects) - len(results)} projects could not be scanned; see the log above", file=sys.stderr
        )
        return 1
    return 1 if failed else 0


def _scan_until_settled(ingestor: Ingestor, settings: Settings, bar: ScanProgressBar | None) -> list[ProjectScan]:
    ingestor.register_projects()
    results = ingestor.scan_all("command")
    # A workflow may override the settle window, so waiting for the longest one suffices.
    settle_seconds = max(
        [settings.ingest.settle_seconds] + [o.settle_seconds or 0.0 for o in settings.ingest.workflows]
    )
    # Files modified within the settle window are still being written: wait, then look again.
    for _ in range(_SETTLE_ROUNDS):
        if not any(result.unsettled for result in results):
            break
        waiting = sum(result.unsettled for result in results)
        logger.info(
            "%d files were modified in the last %.1f s; scanning again once they are quiet",
            waiting,
            settle_seconds,
        )
        time.sleep(settle_seconds)
        if bar is not None:
            bar.restart()
        results = ingestor.scan_all("command")
    return results


def _users(arguments: argparse.Namespace, settings: Settings, projects: list[Project]) -> int:
    from depictiod.users import run_users_command

    return run_users_command(arguments, settings)


def _backup(arguments: argparse.Namespace, settings: Settings, projects: list[Project]) -> int:
    from depictiod.backup import run_backup

    return run_backup(arguments, settings, projects)


def _restore(arguments: argparse.Namespace, settings: Settings, projects: list[Project]) -> int:
    from depictiod.backup import run_restore

    return run_restore(arguments, settings)


def _migrate(arguments: argparse.Namespace, settings: Settings, projects: list[Project]) -> int:
    from depictiod.migrate import run_migrate

    return run_migrate(arguments, settings)


def _serve(arguments: argparse.Namespace, settings: Settings, projects: list[Project]) -> int:
    import uvicorn

    from api import create_app
    from api.security import KeyFileError, ensure_admin, load_or_create_key

    role = getattr(arguments, "role", "all")
    if role != "all" and settings.catalog.backend != "ducklake":
        print(
            f'depictiod: serve --role {role} needs catalog.backend = "ducklake" in {settings.source_file}: a DuckDB '
            "catalog file is opened by one process only, so that process must both scan and serve (--role all)",
            file=sys.stderr,
        )
        return 2
    host = arguments.host or settings.server.host
    port = arguments.port if arguments.port is not None else settings.server.port
    # Until the server runs, Ctrl-C and SIGTERM interrupt the main thread, which opens the
    # catalog; both stop it cleanly.
    signals = _Interrupts()
    with signals.catch():
        try:
            catalog = Catalog(settings.catalog.path, settings.catalog)
        except (KeyboardInterrupt, RuntimeError, CatalogError):
            if not signals.received:
                raise
            return 130
        try:
            load_or_create_key(settings.auth.key_file)
            ensure_admin(catalog, settings)
        except (KeyFileError, ValueError) as error:
            catalog.close()
            print(f"depictiod: {error}", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, RuntimeError):
            # DuckDB turns an interrupt during a query into RuntimeError("Query interrupted").
            if not signals.received:
                raise
            catalog.close()
            return 130

    if role == "ingest":
        return _ingest_until_stopped(settings, projects, catalog, signals)

    # The server accepts requests during the start-up scan, which runs in a background
    # thread; /health/ready turns 200 once it is done. A stop during the scan ends it after
    # its current step, and the next start scans again.
    app = create_app(settings, projects, catalog=catalog, scan_in_background=True, serve_only=role == "api")
    logger.info("starting depictiod %s on http://%s:%d", settings.source_file, host, port)
    server = _server_ending_event_streams(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="auto",
            http="auto",
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            # uvicorn trusts X-Forwarded-For from loopback by default, which would let any
            # local client pick the address that the sign-in limits count.
            proxy_headers=False,
        ),
        catalog,
    )
    # uvicorn installs its own signal handlers while it serves and, after a graceful
    # shutdown on Ctrl-C, raises the interrupt again. Outside that window a signal still
    # arrives as KeyboardInterrupt.
    try:
        with signals.catch():
            server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        # A lifespan that ran has stopped the ingestor and closed the catalog, and a second close does nothing.
        catalog.close()
        return 130 if signals.received else 1
    return 0


def _ingest_until_stopped(settings: Settings, projects: list[Project], catalog: Catalog, signals: _Interrupts) -> int:
    """Scan, watch and reconcile the projects without serving HTTP, until SIGINT or SIGTERM (`serve --role ingest`)."""
    from ingestor import Ingestor

    ingestor = Ingestor(catalog, settings, projects)
    logger.info(
        "depictiod %s ingests %d projects into the shared catalog; no HTTP server", settings.source_file, len(projects)
    )
    try:
        with signals.catch():
            ingestor.start_in_background()
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ingestor.stop()
        catalog.close()
    logger.info("depictiod ingest process stopped")
    return 0


def _server_ending_event_streams(config: Any, catalog: Catalog) -> Any:
    """Return a uvicorn server that ends the open event streams as soon as it starts shutting down.

    uvicorn waits for every open response before it stops, and an event stream never ends
    by itself, so without this a Ctrl-C would wait for the clients to disconnect.
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            catalog.events.close()
            await super().shutdown(sockets)

    return Server(config)


class _Interrupts:
    """Turns SIGINT and SIGTERM into KeyboardInterrupt inside `catch()`, and remembers them."""

    def __init__(self) -> None:
        self.received = False

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def catch(self) -> Iterator[None]:
        previous = {number: signal.signal(number, self._interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
