"""Messages: digests rendered from alerts (pure: alerts in, Block Kit out), Block Kit limits
and escaping, and the two transports (Slack, the outbox with its preview). Rendering does
not import the sender."""
