import os

# Before anything imports great_expectations: no analytics calls from tests.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.pop("SA_HYGIENE_CONFIG", None)
