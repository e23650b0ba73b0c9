"""The Slack app's listeners, one module per kind of request, as Bolt for Python's app template
groups them: ``actions`` (buttons and menus), ``views`` (modals), ``suggestions`` (searches
in a modal's menus), ``commands`` (``/sa``, ``/sa-create`` and what their answers open). Each module has a
``register(app, backends)``; every listener acknowledges first and works after the answer.
"""

from __future__ import annotations

from sa_hygiene.web.slack_app.backends import Backends
from sa_hygiene.web.slack_app.listeners import (
    actions,
    activity,
    alerts,
    commands,
    managers,
    pov,
    suggestions,
    tech_eval,
    views,
)


def register(app, backends: Backends) -> None:
    """Every listener of the app."""
    managers.register(app, backends)
    actions.register(app, backends)
    views.register(app, backends)
    suggestions.register(app, backends)
    commands.register(app, backends)
    tech_eval.register(app, backends)
    pov.register(app, backends)
    activity.register(app, backends)
    alerts.register(app, backends)
