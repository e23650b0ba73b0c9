"""Messages: digests rendered from alerts (pure: alerts in, Block Kit out; ``items`` writes one
record's item, ``digest`` the message around the items, ``notices`` the run summary and the
escalation DMs), Block Kit limits and escaping, and the two transports (Slack, the outbox with
its preview). Rendering does not import the sender."""
