"""The console (services/platform/console/: static files, no build step) in the
gateway: `/console/` serves it, `/` sends a browser there. Everything else keeps
the API's JSON answers (a 404 for an unknown path is still `{"error": ...}`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

CONSOLE_DIR = Path(__file__).resolve().parent / "console"


def mount_console(app: FastAPI) -> None:
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    app.add_api_route("/", home, methods=["GET"], include_in_schema=False)
    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
