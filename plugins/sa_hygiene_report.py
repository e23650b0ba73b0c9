"""The hygiene report inside the Airflow UI: a navigation entry and the page behind it.

Airflow imports plugin files in every component (the scheduler, each task's process), so
this file imports only the plugin base class: the FastAPI app, Airflow's security
dependencies and the configuration are loaded by the api-server on the first request
(``sa_hygiene.report_app``). The page requires an Airflow login and read access to the
``sa_report`` DAG.
"""

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/sa-hygiene"


class _ReportApp:
    """An ASGI app that builds the real one on its first request."""

    def __init__(self):
        self._app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            from sa_hygiene.report_app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class SaHygieneReportPlugin(AirflowPlugin):
    name = "sa_hygiene_report"
    fastapi_apps = [{"app": _ReportApp(), "url_prefix": URL_PREFIX, "name": "SA hygiene report"}]
    external_views = [
        {
            "name": "Hygiene",
            # Relative to the UI's base URL; shown in an iframe at <base>/plugin/sa-hygiene.
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "url_route": "sa-hygiene",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
