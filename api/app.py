"""The Litestar application: Depictio's v1 API over the catalog, with its lifecycle."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio import to_thread
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api.access import check_route_rules, enforce_access_rule, provide_access
from api.auth import API_PREFIX, PUBLIC_PATHS, BearerAuthenticationMiddleware
from api.controllers import CONTROLLERS, UPLOAD_CONTROLLERS, health, health_live, health_ready, metrics_route
from api.controllers.utils import service_version
from api.errors import BODY_LIMIT_SETTING, EXCEPTION_HANDLERS
from api.events import StreamLimits
from api.metrics import ServiceMetrics, wrap_app
from api.policy import Policy
from api.ratelimit import LoginRateLimiter
from api.security import ensure_admin
from api.table_uploads import upload_body_limit
from api.tokens import TokenService
from api.web import Renewals, html_aware, web_router
from catalog import Catalog, CatalogUnwritableError, user_id_for, utc_now
from config import Project, Settings
from ingestor import Ingestor

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    projects: list[Project],
    admin_password: str | None = None,
    catalog: Catalog | None = None,
    ingestor: Ingestor | None = None,
    scan_in_background: bool = False,
    serve_only: bool = False,
) -> Litestar:
    """Build the app; the first scan runs when the app starts, and the catalog closes when it stops.

    Without `catalog`, the app opens `settings.catalog.path` itself at start. An `ingestor`
    that was started already is not started again. By default the app accepts requests only
    after the start-up scan. With `scan_in_background` (as `depictiod serve` runs it), it
    accepts them during the scan, and `/health/ready` is 503 until the scan is done. With
    `serve_only` (`serve --role api`), the app never scans: other processes write the catalog.
    """
    opened: Catalog | None = catalog
    started: Ingestor | None = ingestor

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        catalog = (
            opened if opened is not None else await to_thread.run_sync(Catalog, settings.catalog.path, settings.catalog)
        )
        ingestor = started if started is not None else Ingestor(catalog, settings, projects)
        try:
            await to_thread.run_sync(ensure_admin, catalog, settings, admin_password)
            # Expired tokens are refused anyway, so an unwritable catalog keeps them until the next start.
            with contextlib.suppress(CatalogUnwritableError):
                await to_thread.run_sync(catalog.tokens.purge_expired, utc_now())
            app.state.catalog = catalog
            app.state.ingestor = ingestor
            app.state.settings = settings
            app.state.tokens = TokenService(catalog, settings)
            app.state.login_limiter = LoginRateLimiter(
                settings.auth.login_failures_per_account,
                settings.auth.login_failures_per_address,
                settings.auth.login_window_seconds,
            )
            app.state.admin_id = user_id_for(settings.auth.admin_email)
            app.state.policy = Policy(default_owner=app.state.admin_id, public_read=settings.auth.public_read)
            app.state.event_stream_limits = StreamLimits(
                total=settings.server.event_streams, per_user=settings.server.event_streams_per_user
            )
            app.state.sql_slots = threading.BoundedSemaphore(settings.sql.max_concurrent)
            app.state.web_renewals = Renewals()
            if serve_only:
                ingestor.serve_only()
                logger.info(
                    "depictiod ready with %d projects; it serves only, and ingest processes scan", len(projects)
                )
            elif started is None and scan_in_background:
                await to_thread.run_sync(ingestor.start_in_background)
                logger.info(
                    "depictiod accepts requests with %d projects, and is ready once the start-up scan is done",
                    len(projects),
                )
            else:
                # The start-up scan of every project ends before the server accepts requests.
                if started is None:
                    await to_thread.run_sync(ingestor.start)
                logger.info("depictiod ready with %d projects", len(projects))
            yield
        finally:
            # A second Ctrl-C cancels the lifespan; the catalog must still be closed cleanly.
            with anyio.CancelScope(shield=True):
                catalog.events.close()
                await to_thread.run_sync(ingestor.stop)
                await to_thread.run_sync(catalog.close)
            logger.info("depictiod stopped")

    dependencies = {"access": Provide(provide_access, sync_to_thread=False)}
    # Each router names the setting of its body limit, for the message of a 413 response.
    api = Router(
        path=API_PREFIX,
        route_handlers=CONTROLLERS,
        dependencies=dependencies,
        request_max_body_size=settings.server.max_body_mb * 2**20,
        opt={BODY_LIMIT_SETTING: "server.max_body_mb"},
    )
    uploads = Router(
        path=API_PREFIX,
        route_handlers=UPLOAD_CONTROLLERS,
        dependencies=dependencies,
        request_max_body_size=upload_body_limit(settings),
        opt={BODY_LIMIT_SETTING: "server.max_upload_mb"},
    )
    openapi = OpenAPIConfig(
        title="depictiod",
        version=service_version(),
        description="Depictio's v1 API served from a self-updating DuckDB catalog.",
        # The documentation is public like the service status. Its own pages are not API
        # operations, so the document leaves them out, as Litestar's default router does.
        openapi_router=Router(path="/docs", route_handlers=[], opt={"access": "public"}, include_in_schema=False),
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
        security=[{"BearerToken": []}],
    )
    app = Litestar(
        route_handlers=[
            api,
            uploads,
            web_router(dependencies),
            health,
            health_live,
            health_ready,
            metrics_route(settings.server.metrics_public),
        ],
        lifespan=[lifespan],
        middleware=[DefineMiddleware(BearerAuthenticationMiddleware, exclude=PUBLIC_PATHS)],
        # Every route declares opt={"access": <rule>}; this guard applies it (api.access).
        guards=[enforce_access_rule],
        # Browsers that open a page get errors as pages; every other client gets the JSON body.
        exception_handlers={kind: html_aware(handler) for kind, handler in EXCEPTION_HANDLERS.items()},
        openapi_config=openapi,
        state=State({}),
        # Logging is configured by the command line (depictiod.cli), not by Litestar.
        logging_config=None,
    )
    # A route without a rule would be rejected on every request; fail at start instead.
    check_route_rules(app)
    app.state.metrics = ServiceMetrics(app.state)
    wrap_app(app, app.state.metrics)
    return app
