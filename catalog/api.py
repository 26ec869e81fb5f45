"""The catalogue's REST API (FastAPI; OpenAPI at ``/docs``): ``create_app(settings)``.

Every route but ``/health``, ``/auth/login`` and Trino's event hook needs a bearer token;
the service layer (``catalog/*.py``) checks roles, validates and writes in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from catalog import people
from catalog.errors import CatalogError, Unauthenticated
from catalog.models import User
from catalog.service import Catalog
from datong.settings import Settings

log = logging.getLogger(__name__)
bearer = HTTPBearer(auto_error=False, description="A catalogue API token (dt_…).")


class Context:
    """One API call: its transaction and the authenticated user."""

    def __init__(self, catalog: Catalog, session: Session, actor: User):
        self.catalog = catalog
        self.session = session
        self.actor = actor

    def commit(self, grants_changed: bool = False) -> None:
        """Commit now (so a failure is the caller's error), then republish if grants moved."""
        self.session.commit()
        if grants_changed:
            self.catalog.publish_if_changed()


def catalog_of(request: Request) -> Catalog:
    return request.app.state.catalog  # type: ignore[no-any-return]


def session_of(catalog: Annotated[Catalog, Depends(catalog_of)]) -> Iterator[Session]:
    with catalog.session() as session:
        yield session


def context(
    catalog: Annotated[Catalog, Depends(catalog_of)],
    session: Annotated[Session, Depends(session_of)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Context:
    token = credentials.credentials if credentials else None
    return Context(catalog, session, people.authenticate(session, token))


Ctx = Annotated[Context, Depends(context)]


async def _maintenance_loop(catalog: Catalog, every: float) -> None:
    """Escalate, expire and republish without a human, every ``every`` seconds."""
    while True:
        try:
            await asyncio.to_thread(catalog.maintain)
        except Exception:  # never let one bad pass stop expiry for good
            log.exception("catalogue maintenance failed")
        await asyncio.sleep(every)


def create_app(
    settings: Settings, *, publish: bool = True, maintain_every: float | None = 5.0
) -> FastAPI:
    """The API for the catalogue of ``settings`` (migrated on start)."""
    catalog = Catalog(settings, publish=publish)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if maintain_every:
            task = asyncio.create_task(_maintenance_loop(catalog, maintain_every))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="datong catalogue",
        summary="政务信息资源目录与供需对接 — resource catalogue and supply–demand exchange",
        version="1",
        lifespan=lifespan,
    )
    app.state.catalog = catalog

    @app.exception_handler(CatalogError)
    async def _refused(_request: Request, error: CatalogError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthenticated) else None
        return JSONResponse({"detail": error.message}, status_code=error.status, headers=headers)

    @app.get("/health", tags=["platform"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    from catalog.routes import access, admin, catalogue

    app.include_router(catalogue.router)
    app.include_router(access.router)
    app.include_router(admin.router)
    return app
