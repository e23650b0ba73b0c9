"""Rendered messages for delivery tests: a digest names only what its test is about."""

from __future__ import annotations

from sa_hygiene.delivery.blockkit import Message

DATE = "2026-11-24"
ANN = {"type": "user", "id": "0051a00000AnnAAAAA"}
MANAGER = {"type": "user", "id": "0051a00000MgrAAAAA", "email": "mgr@gitlab.com"}
EAST = {"type": "channel", "name": "#sa-activities-east-sa"}


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def digest(
    recipient: dict = ANN,
    *,
    email: str | None = "ann@gitlab.com",
    fallbacks: tuple[dict, ...] = (),
    replies: int = 0,
    date: str = DATE,
    slot: str | None = None,
    blocks: list[dict] | None = None,
) -> Message:
    """A digest with one section per part; its key follows the renderer's f"{slot}|{recipient}|{date}"."""
    user = recipient["type"] == "user"
    slot = slot or ("sa_digest" if user else "regional_digest")
    who = f"user:{recipient['id']}" if user else f"channel:{recipient['name']}"
    return Message(
        key=f"{slot}|{who}|{date}",
        slot=slot,
        recipient=recipient,
        email=email if user else None,
        fallbacks=fallbacks,
        text=f"Hygiene digest for {who}",
        blocks=blocks if blocks is not None else [section(f"*{who}* part 0")],
        replies=[[section(f"{who} part {n}")] for n in range(1, replies + 1)],
        title=f"Digest {who} {date}",
    )
