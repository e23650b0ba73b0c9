"""The outbox: delivery without Slack, for the demo, reviews and tests.

The outbox answers the calls ``slack_delivery`` makes as a workspace in which every
user and channel exists, and writes each call, in order, to
``<outbox>/<run id>/calls.jsonl`` (``{"method", "recipient", "args"}``; a post also
carries the ``ts`` the outbox gave it and the digest's ``title``), then renders
``preview.html`` from that file. Because the preview is made from the file, a
re-run that posts nothing renders the same preview again. Its history is the posts
of every run folder, so a crashed outbox run recovers the way a Slack run does.
Nothing secret is ever written: the outbox has no token.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from sa_hygiene.delivery.preview import CALLS, PREVIEW, write_preview


def _slack_id(prefix: str, name: str) -> str:
    return prefix + hashlib.sha1(name.encode()).hexdigest()[:10].upper()


class OutboxSink:
    """Writes the Slack calls of a delivery run into ``folder/<run id>/``."""

    workspace = "outbox"

    def __init__(self, folder: str | Path, run_id: str) -> None:
        self.root = Path(folder)
        # Airflow run ids hold ':', '+' and '.'; keep the folder name portable and inside the outbox.
        self.folder = self.root / re.sub(r"[^A-Za-z0-9_-]+", "_", run_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self._last_ts = 0.0

    @property
    def calls_path(self) -> Path:
        return self.folder / CALLS

    @property
    def preview_path(self) -> Path:
        return self.folder / PREVIEW

    def call(self, method: str, recipient: dict, args: dict, title: str | None = None) -> dict[str, Any]:
        line: dict[str, Any] = {"method": method, "recipient": recipient, "args": args}
        answer = self._answer(method, recipient, args)
        if method in ("chat.postMessage", "chat.update"):
            line |= {"ts": answer["ts"], "title": title}
        # Runs that overlap may share a run folder: one locked write per line, never interleaved.
        with self.calls_path.open("a", encoding="utf-8") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
        return answer

    def finish(self) -> None:
        """Render the preview beside the calls, replacing the old one whole."""
        staged = self.preview_path.with_name(f".{PREVIEW}.{os.getpid()}")
        write_preview(self.posts(self.folder), staged, run_id=self.run_id)
        os.replace(staged, self.preview_path)

    def _answer(self, method: str, recipient: dict, args: dict) -> dict[str, Any]:
        if method == "users.lookupByEmail":
            return {"ok": True, "user": {"id": _slack_id("U", args["email"].lower())}}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + args["users"][1:]}}
        if method == "conversations.list":
            name = recipient["name"].removeprefix("#")
            return {"ok": True, "channels": [{"id": _slack_id("C", name), "name": name}]}
        if method == "chat.postMessage":
            # Unique and increasing, like Slack's: the ledger and thread replies key on it.
            self._last_ts = max(time.time(), self._last_ts + 1e-6)
            return {"ok": True, "channel": args["channel"], "ts": f"{self._last_ts:.6f}"}
        if method == "chat.update":  # a post edited in place (the activity posts): same ts
            return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
        if method in ("conversations.history", "conversations.replies"):
            return {"ok": True, "messages": self._history(method, args)}
        raise ValueError(f"the outbox does not answer {method}")

    def _history(self, method: str, args: dict) -> list[dict]:
        thread = args["ts"] if method == "conversations.replies" else None
        found = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for post in self.posts(folder):
                a = post["args"]
                if (
                    a["channel"] == args["channel"]
                    and a.get("thread_ts") == thread
                    and float(post["ts"]) >= float(args["oldest"])
                ):
                    found.append({"ts": post["ts"], "text": a["text"], "metadata": a["metadata"]})
        return found

    @staticmethod
    def posts(folder: Path) -> list[dict]:
        """The chat.postMessage lines of one run folder, in order."""
        path = folder / CALLS
        if not path.exists():
            return []
        lines = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        return [line for line in lines if line["method"] == "chat.postMessage"]
