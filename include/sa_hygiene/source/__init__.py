"""Where the data comes from. Imports only ``contract``.

``salesforce``: the one Salesforce client, reads and writes. ``records``: what each object's
table holds and how Salesforce's records become typed Arrow tables. ``extract``: a snapshot,
complete or incremental, committed atomically. ``changes``: the 15-minute changes feed.
``store``: where snapshots and their feeds are kept. ``snapshot``: a snapshot (and its changes)
read into typed frames, with the quarantine. ``frames``, ``jsonl``: helpers.
"""
