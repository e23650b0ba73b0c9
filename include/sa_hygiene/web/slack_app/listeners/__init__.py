"""The Slack app's listeners, one module per kind of request, as Bolt for Python's app template
groups them: ``actions`` (buttons and menus), ``views`` (modals); ``commands`` and
``suggestions`` go beside them when the app answers those. Each module has a
``register(app, backends)``; every listener acknowledges first and works after the answer.
"""

from __future__ import annotations

from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.listeners import actions, alerts, views


def register(app, backends: Backends) -> None:
    """Every listener of the app."""
    actions.register(app, backends)
    views.register(app, backends)
    alerts.register(app, backends)
