"""The hygiene report inside the Airflow UI: a navigation entry and the page behind it.

Airflow imports plugin files in every component (the scheduler, each task's process), so
this file imports only the plugin base class: the FastAPI app, Airflow's security
dependencies and the configuration are loaded by the api-server on the first request
(``sa_hygiene.web.report_app``). The page requires an Airflow login and read access to the
``sa_report`` DAG. The Slack app's endpoint (``sa_hygiene.web.slack_app.app``) is mounted beside it.
"""

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/sa-hygiene"
# Slack's Request URL for interactivity: https://<airflow>/sa-hygiene-slack/events. Not under
# URL_PREFIX: the report's app is mounted there and would take every path below it.
SLACK_URL_PREFIX = "/sa-hygiene-slack"


class _LazyApp:
    """An ASGI app that builds the real one (``module:function``) on its first request."""

    def __init__(self, factory: str):
        self._factory = factory
        self._app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            import importlib

            module, name = self._factory.split(":")
            self._app = getattr(importlib.import_module(module), name)()
        await self._app(scope, receive, send)



class SaHygieneReportPlugin(AirflowPlugin):
    name = "sa_hygiene_report"
    fastapi_apps = [
        {"app": _LazyApp("sa_hygiene.web.report_app:create_app"), "url_prefix": URL_PREFIX, "name": "SA hygiene report"},
        # No Airflow login here: Slack signs every request, and the app checks the signature first.
        {"app": _LazyApp("sa_hygiene.web.slack_app.app:create_asgi_app"), "url_prefix": SLACK_URL_PREFIX,
         "name": "SA hygiene Slack app"},
    ]
    external_views = [
        {
            "name": "Hygiene",
            # Relative to the UI's base URL; shown in an iframe at <base>/plugin/sa-hygiene.
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "url_route": "sa-hygiene",
            "destination": "nav",
            "nav_top_level": True,
        },
        {
            # The alerts people made in Slack (/sa-alert), for the platform engineer.
            "name": "Hygiene: user alerts",
            "href": f"{URL_PREFIX.lstrip('/')}/user-alerts",
            "url_route": "sa-hygiene-user-alerts",
            "destination": "nav",
        },
    ]
