"""What runs beside the web app for its lifetime: the scheduler, when enabled."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Warn of an unset public URL; start the job scheduler (if enabled), stop it after."""
    # Everything alive by now (modules, the app) lives as long as the process: frozen, the
    # cyclic collector stops walking it on each full pass, which ingest's many short-lived
    # objects trigger often (about 8 us of CPU per ingested event).
    gc.collect()
    gc.freeze()
    warning = app.state.settings.public_url_warning
    if warning:
        log.warning(warning)
    scheduler = None
    if app.state.settings.scheduler_enabled:
        from lantern.scheduler import start_scheduler

        scheduler = start_scheduler(app.state.settings, app.state.engine)
    try:
        yield
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
