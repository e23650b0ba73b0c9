"""The ground floor: what every other layer agrees on.

The configuration (``defaults.yaml`` and ``workflows.yaml`` beside it, merged with the user's
file; what a scope or an expectation may say is checked in ``expressions``), the data
contract's objects and fields (``schema``), recipients in the engine's encoded form, and when
messages go out (``schedule``). It imports nothing of the project: extraction, the engine and
delivery all read ``Config``, so it cannot live in any of them.
"""
