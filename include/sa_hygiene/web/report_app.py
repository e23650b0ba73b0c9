"""The latest hygiene report, served inside the Airflow UI (the api-server's plugin app).

Every request is authenticated by Airflow itself: the api-server's own dependency reads
the JWT from the ``Authorization`` header or the UI's session cookie, and the auth manager
must let the user read the ``sa_report`` DAG, whose output this is (the report names
customers and deals). An unauthenticated request gets 401, an unauthorized one 403.

Files are read from the report folder (``Config.report_folder()``, a local folder or an
fsspec URL) through ``latest.json``, so a report being written is never served half done.
The pages are self-contained, and the Content-Security-Policy holds them to it: nothing
but inline styles and scripts, and data: images, even if some Salesforce text slipped by.
"""

from __future__ import annotations

import json
import mimetypes
import posixpath

import fsspec
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

from sa_hygiene.contract.config import Config, load_config

REPORT_DAG = "sa_report"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
       "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")  # fmt: skip
NO_REPORT = """<!doctype html><meta charset="utf-8"><title>No hygiene report yet</title>
<body style="font:15px system-ui;margin:3em">
<h1>No hygiene report yet</h1>
<p>The <code>sa_report</code> DAG writes one after each snapshot; run it (or <code>sa_snapshot</code>) first.</p>"""


def _file(cfg: Config, path: str) -> tuple[bytes, str] | None:
    """(bytes, media type) of ``path`` inside the latest report, or None when there is none."""
    fs, root = fsspec.core.url_to_fs(cfg.report_folder())
    try:
        with fs.open(f"{root}/latest.json") as fh:
            latest = json.load(fh)["snapshot"]
        with fs.open(f"{root}/{latest}/{path}", "rb") as fh:
            body = fh.read()
    except (FileNotFoundError, IsADirectoryError, KeyError, ValueError):
        return None
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return body, media


def create_app(cfg: Config | None = None) -> FastAPI:
    """The plugin's app: ``GET /{path}`` is that file of the latest report (``/`` its index)."""
    from airflow.api_fastapi.core_api.security import requires_access_dag

    cfg = cfg or load_config()
    app = FastAPI(title="sa-hygiene report", docs_url=None, redoc_url=None, openapi_url=None)
    allowed = [Depends(requires_access_dag(method="GET", param_dag_id=REPORT_DAG))]

    @app.get("/user-alerts", dependencies=allowed)
    def user_alerts() -> Response:
        """The alerts people made in Slack (``web/user_alerts_page.py``)."""
        from sa_hygiene.state.db import DatabaseError
        from sa_hygiene.state.user_alerts import UserAlerts
        from sa_hygiene.web.user_alerts_page import user_alerts_page

        alerts, error = [], None
        try:
            with UserAlerts(cfg.state_url) as store:
                alerts = store.list()
        except DatabaseError as exc:
            error = f"The state database cannot be read: {exc}"
        page = user_alerts_page(alerts, {}, error)
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

    @app.get("/{path:path}", dependencies=allowed)
    def report_file(path: str) -> Response:
        path = posixpath.normpath(path or "index.html").lstrip("/")
        if path == ".":
            path = "index.html"
        if path == ".." or path.startswith("../"):  # nothing outside the report folder
            raise HTTPException(status_code=404)
        found = _file(cfg, path)
        if found is None:
            if path == "index.html":
                return HTMLResponse(NO_REPORT, status_code=404, headers={"Content-Security-Policy": CSP})
            raise HTTPException(status_code=404)
        body, media = found
        headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        return Response(body, media_type=media, headers=headers)

    return app
