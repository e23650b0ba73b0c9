"""The rule engine: frames prepared from a snapshot, workflows compiled to Great
Expectations, routing of each alert to its recipient. Imports ``contract`` and ``source``."""
