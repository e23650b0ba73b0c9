"""What the project remembers between runs: the database, the delivery ledger, the alert
state (episodes, snoozes, digest marks, feed windows) and Slack form submissions. Storage
does not evaluate: it imports ``contract`` (and ``source`` helpers), never the engine."""
