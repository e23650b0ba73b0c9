"""Recipients as the engine carries them (CONTRACT.md § 3): ``user:<Id>`` or ``channel:<#name>``.

Recipients travel through the engine as short strings because they are computed for whole
columns at once; ``as_recipient`` turns one into the contract's JSON object at the edge and
``encode`` turns it back. Every layer speaks this form, so it lives on the ground floor.
"""

from __future__ import annotations

USER, CHANNEL = "user:", "channel:"


def as_recipient(encoded: str) -> dict:
    if encoded.startswith(USER):
        return {"type": "user", "id": encoded[len(USER) :]}
    return {"type": "channel", "name": encoded[len(CHANNEL) :]}


def encode(recipient: dict) -> str:
    return USER + recipient["id"] if recipient["type"] == "user" else CHANNEL + recipient["name"]
