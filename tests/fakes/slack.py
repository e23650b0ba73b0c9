"""A local Slack Web API for tests: plain HTTP on 127.0.0.1, reached by the real SlackHook and slack_sdk.

It speaks the methods delivery uses (``users.lookupByEmail``, ``conversations.open``,
``conversations.list``, ``conversations.history``, ``conversations.replies``,
``chat.postMessage``, and for the Slack app ``auth.test``, ``users.info``, ``chat.update``,
``chat.postEphemeral``, ``views.open``, ``views.update``) the way Slack does: HTTP 200 with ``ok: false`` and an error
code for API errors, cursor pagination, newest-first history, metadata returned
only with ``include_all_metadata``, and ``conversations.open`` refusals for users Slack
found but will not DM (``add_user(dm_error=...)``). Every request is recorded with its decoded
arguments; the Bearer token is checked. ``fail`` injects faults: rate limits with
``Retry-After``, 5xx answers, API errors, dropped connections, and a post that is
stored but whose answer is lost (optionally running a callback first, e.g. to kill
the client), and a slow answer (``delay``) to a call served as usual.

For concurrency tests, ``gate(n)`` holds every request until ``n`` of them wait at once (so
that ``n`` client processes start posting together), and ``posts_per_part()`` counts how
often each digest part reached a conversation. Public channels may be posted to without
being a member (``chat:write.public``), but their history is ``not_in_channel`` until the app
joins them (``conversations.join``, refused with ``missing_scope`` when ``can_join`` is off).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TOKEN = "xoxb-fake-0123456789-secret"


@dataclass
class Request:
    method: str
    args: dict
    authorized: bool


@dataclass
class Fault:
    method: str
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    after_storing: bool = False  # the post is stored, then the answer fails
    drop: bool = False  # close the connection instead of answering
    on_hit: Callable[[], None] | None = None
    times: int = 1
    after: int = 0  # matching calls to let through first
    delay: float = 0.0  # seconds to wait before answering (at most, with ``until``)
    until: threading.Event | None = None  # answer as soon as this is set
    serve: bool = False  # answer as usual (after the delay) instead of failing


@dataclass
class FakeSlack:
    token: str = TOKEN
    page_size: int = 2
    users: dict[str, dict] = field(default_factory=dict)  # lower-case e-mail -> user
    channels: dict[str, dict] = field(default_factory=dict)  # id -> {"id", "name"}
    messages: dict[str, list[dict]] = field(default_factory=dict)  # channel id -> posts, oldest first
    requests: list[Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    can_join: bool = True
    views: dict[str, dict] = field(default_factory=dict)  # view id -> the modal as last opened/updated
    ephemeral: list[dict] = field(default_factory=list)  # chat.postEphemeral arguments

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._gate: threading.Barrier | None = None
        self._last_ts = 0.0
        self._dm_errors: dict[str, str] = {}
        self._members: dict[str, list[str]] = {}  # channel id -> the people in it
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # ------------------------------------------------------------------ test API

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_user(self, email: str, user_id: str, *, deleted: bool = False, dm_error: str | None = None) -> None:
        """``dm_error``: what ``conversations.open`` answers for this user, e.g. ``user_disabled``
        (deactivated after the lookup) or ``cannot_dm_bot``."""
        self.users[email.lower()] = {"id": user_id, "deleted": deleted, "profile": {"email": email}}
        if dm_error:
            self._dm_errors[user_id] = dm_error

    def add_channel(self, name: str, channel_id: str, *, member: bool = True, private: bool = False,
                    members: tuple[str, ...] = ()) -> None:  # fmt: skip
        """``member``: the app is in it; ``members``: the people in it (``conversations.members``)."""
        self.channels[channel_id] = {"id": channel_id, "name": name, "is_archived": False, "is_member": member,
                                     "is_private": private}  # fmt: skip
        self._members[channel_id] = list(members)

    def gate(self, n: int, timeout: float = 120.0) -> None:
        """Hold requests until ``n`` wait together, once; a request still alone after ``timeout``
        seconds goes on (a client that never came must not hang the test)."""
        self._gate = threading.Barrier(n, timeout=timeout)

    def posts_per_part(self) -> dict[tuple[str, int], int]:
        """How many times each (delivery key, part) was posted, over all conversations."""
        counts: dict[tuple[str, int], int] = {}
        for posts in self.messages.values():
            for m in posts:
                payload = (m.get("metadata") or {}).get("event_payload") or {}
                part = (payload.get("key"), payload.get("part"))
                counts[part] = counts.get(part, 0) + 1
        return counts

    def fail(self, method: str, **kwargs) -> None:
        self.faults.append(Fault(method, **kwargs))

    def calls(self, *methods: str) -> list[Request]:
        return [r for r in self.requests if not methods or r.method in methods]

    def posts(self, channel: str) -> list[dict]:
        return list(self.messages.get(channel, []))

    # ------------------------------------------------------------------ the API

    def handle(self, method: str, args: dict, authorization: str | None) -> tuple[int, dict, dict]:
        gate = self._gate
        if gate is not None:
            try:
                gate.wait()
            except threading.BrokenBarrierError:
                pass
            self._gate = None
        status, headers, body, delay, until = self._handle(method, args, authorization)
        if until is not None:
            until.wait(delay)
        elif delay:
            time.sleep(delay)
        return status, headers, body

    def _handle(self, method: str, args: dict, authorization: str | None) -> tuple[int, dict, dict, float, Any]:
        authorized = authorization == f"Bearer {self.token}"
        with self._lock:
            self.requests.append(Request(method, args, authorized))
            if not authorized:
                return 200, {}, {"ok": False, "error": "invalid_auth" if authorization else "not_authed"}, 0.0, None
            fault = next((f for f in self.faults if f.method == method and f.times > 0), None)
            if fault and fault.after:
                fault.after -= 1
            elif fault:
                fault.times -= 1
                if fault.serve:
                    if fault.on_hit:
                        fault.on_hit()
                    return 200, {}, self._dispatch(method, args), fault.delay, fault.until
                if fault.after_storing:
                    self._dispatch(method, args)
                if fault.on_hit:
                    fault.on_hit()
                if fault.drop:
                    return 0, {}, {}, fault.delay, fault.until
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                body = {
                    "ok": False,
                    "error": fault.error or ("ratelimited" if fault.status == 429 else "fatal_error"),
                }
                return fault.status, headers, body, fault.delay, fault.until
            return 200, {}, self._dispatch(method, args), 0.0, None

    def _dispatch(self, method: str, args: dict) -> dict:
        handler = {
            "users.lookupByEmail": self._lookup,
            "conversations.open": self._open,
            "conversations.list": self._list,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "chat.postMessage": self._post,
            "conversations.join": self._join,
            "auth.test": lambda args: {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T0FAKE"},
            "users.info": self._user_info,
            "chat.update": self._update,
            "chat.postEphemeral": self._ephemeral,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "conversations.info": self._info,
            "conversations.members": self._members_of,
            # Socket Mode's first call: this fake has no WebSocket, so every app-level token is refused.
            "apps.connections.open": lambda args: {"ok": False, "error": "invalid_auth"},
        }.get(method)
        return handler(args) if handler else {"ok": False, "error": "unknown_method"}

    def _info(self, args: dict) -> dict:
        channel = self.channels.get(args.get("channel"))
        return {"ok": True, "channel": channel} if channel else {"ok": False, "error": "channel_not_found"}

    def _members_of(self, args: dict) -> dict:
        if args.get("channel") not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "members": self._members.get(args["channel"], []), "response_metadata": {"next_cursor": ""}}

    def _lookup(self, args: dict) -> dict:
        user = self.users.get(args.get("email", "").lower())
        return {"ok": True, "user": user} if user else {"ok": False, "error": "users_not_found"}

    def _open(self, args: dict) -> dict:
        user_id = args.get("users", "")
        if user_id not in {u["id"] for u in self.users.values()}:
            return {"ok": False, "error": "user_not_found"}
        if user_id in self._dm_errors:
            return {"ok": False, "error": self._dm_errors[user_id]}
        dm = "D" + user_id[1:]
        self.channels.setdefault(dm, {"id": dm, "is_im": True, "user": user_id})
        return {"ok": True, "channel": {"id": dm}}

    def _list(self, args: dict) -> dict:
        named = [c for c in self.channels.values() if "name" in c]
        start = int(args.get("cursor") or 0)
        page = named[start : start + self.page_size]
        more = start + self.page_size < len(named)
        return {
            "ok": True,
            "channels": page,
            "response_metadata": {"next_cursor": str(start + self.page_size) if more else ""},
        }

    def _post(self, args: dict) -> dict:
        channel = args.get("channel")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if len(args.get("blocks") or []) > 50:
            return {"ok": False, "error": "invalid_blocks"}
        thread_ts = args.get("thread_ts")
        if thread_ts and thread_ts not in {m["ts"] for m in self.messages.get(channel, [])}:
            return {"ok": False, "error": "thread_not_found"}
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        message = {
            "type": "message",
            "ts": f"{self._last_ts:.6f}",
            "text": args.get("text"),
            "blocks": args.get("blocks"),
        }
        for name in ("thread_ts", "metadata"):
            if args.get(name):
                message[name] = args[name]
        self.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _user_info(self, args: dict) -> dict:
        user = next((u for u in self.users.values() if u["id"] == args.get("user")), None)
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _update(self, args: dict) -> dict:
        posts = self.messages.get(args.get("channel"), [])
        message = next((m for m in posts if m["ts"] == args.get("ts")), None)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        blocks = _json_arg(args.get("blocks"))
        if blocks is not None and len(blocks) > 50:
            return {"ok": False, "error": "invalid_blocks"}
        message.update({"text": args.get("text"), "blocks": blocks, "edited": True})
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "text": message["text"]}

    def _ephemeral(self, args: dict) -> dict:
        if args.get("channel") not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        self.ephemeral.append(dict(args))
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def _views_open(self, args: dict) -> dict:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = {**_json_arg(args.get("view")), "id": f"V{len(self.views) + 1:08d}"}
        self.views[view["id"]] = view
        return {"ok": True, "view": view}

    def _views_update(self, args: dict) -> dict:
        if args.get("view_id") not in self.views:
            return {"ok": False, "error": "not_found"}
        view = {**_json_arg(args.get("view")), "id": args["view_id"]}
        self.views[view["id"]] = view
        return {"ok": True, "view": view}

    def _join(self, args: dict) -> dict:
        channel = self.channels.get(args.get("channel"))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not self.can_join:
            return {"ok": False, "error": "missing_scope", "needed": "channels:join"}
        channel["is_member"] = True
        return {"ok": True, "channel": channel}

    def _history(self, args: dict) -> dict:
        if args.get("channel") not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if self.channels[args["channel"]].get("is_member") is False:
            return {"ok": False, "error": "not_in_channel"}
        found = [m for m in self.messages.get(args["channel"], []) if "thread_ts" not in m]
        return self._page(list(reversed(found)), args)

    def _replies(self, args: dict) -> dict:
        posts = self.messages.get(args.get("channel"), [])
        thread = [m for m in posts if m["ts"] == args.get("ts") or m.get("thread_ts") == args.get("ts")]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return self._page(thread, args)

    def _page(self, found: list[dict], args: dict) -> dict:
        oldest = float(args.get("oldest") or 0)
        found = [m for m in found if float(m["ts"]) > oldest]
        if args.get("include_all_metadata") not in ("1", "true", True):
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        start, limit = int(args.get("cursor") or 0), min(int(args.get("limit") or 100), self.page_size)
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": found[start : start + limit],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }


def _json_arg(value: Any) -> Any:
    """A JSON argument as sent in a form body (a string) or a JSON body (already decoded)."""
    return json.loads(value) if isinstance(value, str) else value


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            args: dict = dict(parse_qsl(url.query))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            if body and self.headers.get_content_type() == "application/json":
                args |= json.loads(body)
            elif body:
                args |= dict(parse_qsl(body))
            method = url.path.removeprefix("/api/")
            status, headers, answer = fake.handle(method, args, self.headers.get("Authorization"))
            if not status:
                self.close_connection = True
                return
            payload = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client was killed on purpose

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args) -> None:
            pass

    return Handler
