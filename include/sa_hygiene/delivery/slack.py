"""Delivering rendered digests to Slack, each exactly once.

A digest is one first message plus thread replies, addressed to a CONTRACT
recipient. Delivery finds the Slack conversation (a user by the e-mail Salesforce
has for them, with fallbacks when Slack does not know them; a channel by name) and
posts the parts in order, the replies in the first part's thread.

Slack has no idempotency key, so the ledger marks each part ``pending`` before the
post and ``sent`` after it, and every post carries its delivery key and part number
in Slack message metadata. A part found ``pending`` (the process died, or Slack's
answer was lost, between the two marks) is looked up in the conversation by that
metadata before anything is posted again. Re-running a task, a DAG run or the
command therefore never posts a digest twice.

The same logic drives two sinks that differ only in transport: ``SlackSink`` calls
the Slack Web API through the Airflow provider's hook, ``OutboxSink``
(``sa_hygiene.delivery.outbox``) writes the calls to a folder with an HTML preview.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    BackoffRetryIntervalCalculator,
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
)

from sa_hygiene.delivery.blockkit import InvalidMessage, Message, check_message, fit_message
from sa_hygiene.state.ledger import DONE, PENDING, LeaseLost, Ledger, LedgerError, Part, new_owner

log = logging.getLogger(__name__)

METADATA_EVENT = "sa_hygiene_digest"
# Slack's answers meaning "no user to message here": the digest goes to the next fallback.
NO_SUCH_USER = {"users_not_found", "user_not_found", "user_disabled", "cannot_dm_bot"}
# A post made after a pending mark is searched from this many seconds before the
# mark, in case Slack's clock is behind ours.
CLOCK_SKEW = 300.0


class RecipientNotFound(LookupError):
    """No Slack conversation for a recipient: an unknown channel, or no known user among the fallbacks."""


class DeliveryFailed(RuntimeError):
    """Raised after a delivery run in which some digests could not be delivered."""


@dataclass(frozen=True)
class UnknownUser:
    """A user Slack does not know by their Salesforce e-mail, and where their digest went instead."""

    key: str
    recipient: dict
    email: str | None
    delivered_to: dict | None


@dataclass
class DeliveryReport:
    """What one delivery run did, by delivery key."""

    run_id: str
    sent: list[str] = field(default_factory=list)  # completed by this run
    recovered: list[str] = field(default_factory=list)  # of those, found in Slack rather than posted again
    already_sent: list[str] = field(default_factory=list)  # completed by an earlier run
    elsewhere: list[str] = field(default_factory=list)  # completed meanwhile by another delivery run
    failed: dict[str, str] = field(default_factory=dict)  # key -> error
    unknown_users: list[UnknownUser] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)  # "key part n": posted, but Slack never showed it

    def raise_for_failures(self) -> None:
        """Fail the task after everything deliverable was delivered; a retry resumes the rest."""
        if self.failed:
            lines = "\n".join(f"  {key}: {error}" for key, error in self.failed.items())
            raise DeliveryFailed(f"{len(self.failed)} digest(s) not delivered in run {self.run_id}:\n{lines}")


class Sink(Protocol):
    """A transport for Slack Web API calls. ``workspace`` scopes the ledger's rows."""

    workspace: str

    def call(self, method: str, recipient: dict, args: dict, title: str | None = None) -> dict[str, Any]:
        """Call ``method`` for ``recipient`` and return Slack's answer; raise SlackApiError on ``ok: false``."""
        ...

    def finish(self) -> None:
        """Called once at the end of a delivery run."""
        ...


def deliver(
    messages: Sequence[Message], sink: Sink, ledger: Ledger, run_id: str, *, wait_seconds: float | None = None
) -> DeliveryReport:
    """Deliver every message not delivered yet; a failing one does not stop the others.

    Parts that another delivery run is posting right now (it holds their lease) are left to it;
    once everything else is done, this run waits for them, at most ``wait_seconds`` (the
    ledger's lease by default) without progress, and takes over any part whose lease ends
    unfinished. What is still held then counts as failed, so that a task's retry comes back.
    Call ``raise_for_failures()`` on the report to fail an Airflow task once all else is
    delivered: its retry picks up exactly what is missing. A ledger that cannot be used
    (``LedgerError``) stops the run at once: nothing can be delivered safely without it.
    Each message is fitted to Slack's limits first (``blockkit.fit_message``), whoever rendered it.
    """
    messages = [fit_message(m) for m in messages]
    duplicates = sorted(k for k, n in Counter(m.key for m in messages).items() if n > 1)
    if duplicates:
        raise ValueError(f"delivery keys must be unique per run, repeated: {', '.join(duplicates)}")
    report = DeliveryReport(run_id)
    courier = _Courier(sink, ledger, run_id, report)
    patience = ledger.lease_seconds if wait_seconds is None else wait_seconds
    try:
        waiting = [m for m in messages if courier.attempt(m) == HELD]
        deadline = time.monotonic() + patience
        while waiting and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            still = [m for m in waiting if courier.attempt(m) == HELD]
            if len(still) < len(waiting) or courier.progressed():
                deadline = time.monotonic() + patience
            waiting = still
        for message in waiting:
            report.failed[message.key] = f"still being delivered by another run ({courier.holders[message.key]})"
    finally:
        sink.finish()
    log.info(
        "delivery %s: %d sent (%d recovered), %d already sent, %d delivered by another run, %d failed, "
        "%d unknown Slack users",
        run_id, len(report.sent), len(report.recovered), len(report.already_sent), len(report.elsewhere),
        len(report.failed), len(report.unknown_users),
    )  # fmt: skip
    return report


def _describe(exc: BaseException) -> str:
    """A short error for reports and logs: the Slack method and its error code, never the request."""
    if isinstance(exc, SlackApiError):
        method = urlsplit(exc.response.api_url).path.rsplit("/", 1)[-1]
        status = exc.response.status_code
        error = exc.response.get("error") if status == 200 else f"HTTP {status}"
        return f"{method}: {error}"
    return f"{type(exc).__name__}: {exc}"


def _contract(recipient: dict) -> dict:
    """The CONTRACT recipient object, without the e-mail a fallback carries."""
    return {k: recipient[k] for k in ("type", "id", "name") if k in recipient}


DONE_, HELD = "done", "held"
# How often a run looks again at parts another run is posting.
POLL_SECONDS = 0.25
# Searches of a conversation the app may not read (``not_in_channel``) before a part that may
# be in it is given up as posted-but-unconfirmed.
MAX_CHECKS = 3


class _Courier:
    """Delivery of one run: leases, resolution, ledger marks, posts and their recovery."""

    def __init__(self, sink: Sink, ledger: Ledger, run_id: str, report: DeliveryReport) -> None:
        self.sink, self.ledger, self.run_id, self.report = sink, ledger, run_id, report
        self.workspace = sink.workspace
        self.owner = new_owner(run_id)
        self.holders: dict[str, str] = {}  # key -> the other run holding one of its parts
        self._parts_done: dict[str, int] = {}
        self._progress = 0

    def attempt(self, message: Message) -> str:
        """Deliver one message: ``done`` (sent, failed or finished elsewhere) or ``held``."""
        try:
            return self.deliver(message)
        except LedgerError:
            raise
        except Exception as exc:  # one recipient's failure must not stop the others
            self.report.failed[message.key] = _describe(exc)
            log.warning("not delivered: %s: %s", message.key, self.report.failed[message.key])
            return DONE_

    def progressed(self) -> bool:
        """Whether parts held elsewhere got done since the last call."""
        seen, self._progress = self._progress, 0
        return seen > 0

    def deliver(self, message: Message) -> str:
        key, parts = message.key, message.parts()
        if key not in self.holders:
            done = self.ledger.parts(self.workspace, key)
            if all(n in done and done[n].state in DONE for n in range(len(parts))):
                self.report.already_sent.append(key)
                return DONE_
        try:
            check_message(message)
        except InvalidMessage as exc:
            self._record_failure(key, exc)
            raise
        target = channel = thread_ts = None
        posted = recovered = False
        for n in range(len(parts)):
            claim = self.ledger.claim(self.workspace, key, n, owner=self.owner, run_id=self.run_id)
            row = claim.part
            if claim.outcome == HELD:
                self.holders[key] = row.owner or "?"
                return HELD
            if claim.outcome == "claimed":
                try:
                    if n == 0:
                        # Once part 0 may be in Slack, the digest stays in that conversation,
                        # whatever Slack's directory says today.
                        target, channel = (row.target, row.channel) if row.state == PENDING else self._place(message)
                    ts, found = self._recover_or_post(message, n, row, target, channel, thread_ts)
                except LeaseLost:
                    self.holders[key] = "a run that took over an expired lease"
                    return HELD
                finally:
                    self.ledger.release(self.workspace, key, n, owner=self.owner)
                posted, recovered = True, recovered or found
            else:
                ts = row.ts
                if n == 0:
                    target, channel = row.target, row.channel
                if self._parts_done.get(key, -1) < n:
                    self._progress += 1
            self._parts_done[key] = n
            thread_ts = thread_ts or ts
        if posted:
            self.report.sent.append(key)
            if recovered:
                self.report.recovered.append(key)
            log.info("delivered %s to %s (%d part(s))", key, target, len(parts))
        else:
            self.report.elsewhere.append(key)
        self.holders.pop(key, None)
        return DONE_

    def _recover_or_post(
        self, message: Message, n: int, row: Part, target: dict, channel: str, thread_ts: str | None
    ) -> tuple[str | None, bool]:
        """(ts, found): a pending part is looked for in Slack first, and posted only when absent."""
        if row.state == PENDING:
            try:
                ts = self._find(target, channel, message.key, n, row.marked_at, thread_ts)
            except SlackApiError as exc:
                if exc.response.get("error") != "not_in_channel" or not self._join(target, channel):
                    if exc.response.get("error") != "not_in_channel":
                        raise
                    return self._unreadable(message, n)
                ts = self._find(target, channel, message.key, n, row.marked_at, thread_ts)
            if ts:
                self.ledger.mark_sent(self.workspace, message.key, n, ts=ts)
                return ts, True
        return self._post(message, n, target, channel, thread_ts), False

    def _join(self, target: dict, channel: str) -> bool:
        """Join a public channel the app posts to without being a member (``chat:write.public``),
        so that its history can be read; False when Slack does not allow it."""
        try:
            self.sink.call("conversations.join", target, {"channel": channel})
        except SlackApiError as exc:
            log.warning("cannot join %s to look for a lost post: %s", channel, _describe(exc))
            return False
        return True

    def _unreadable(self, message: Message, n: int) -> tuple[str | None, bool]:
        """A part that may be in a conversation the app cannot read: checked again by the next
        runs, then given up as unconfirmed (never posted twice); the rest of the digest goes on."""
        checks = self.ledger.count_check(self.workspace, message.key, n)
        if checks < MAX_CHECKS:
            raise RecipientNotFound(
                f"not_in_channel: cannot read the conversation to look for part {n} "
                f"(check {checks} of {MAX_CHECKS}); invite the app or grant channels:join"
            )
        self.ledger.mark_unconfirmed(self.workspace, message.key, n)
        self.report.unconfirmed.append(f"{message.key} part {n}")
        return None, True

    def _post(self, message: Message, n: int, target: dict, channel: str, thread_ts: str | None) -> str:
        args = {
            "channel": channel,
            "text": message.notification(n),
            "blocks": message.parts()[n],
            "metadata": {"event_type": METADATA_EVENT, "event_payload": {"key": message.key, "part": n}},
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if thread_ts:
            args["thread_ts"] = thread_ts
        self.ledger.mark_pending(self.workspace, message.key, n, owner=self.owner, target=target, channel=channel)
        try:
            answer = self.sink.call("chat.postMessage", target, args, title=message.title)
        except SlackApiError as exc:
            # Slack answered ok: false, so nothing was posted. Any other failure (a 5xx,
            # a dropped connection) leaves the part pending: the post may have landed.
            if exc.response.status_code == 200:
                self.ledger.mark_failed(
                    self.workspace, message.key, n, owner=self.owner, run_id=self.run_id, error=_describe(exc)
                )
            raise
        self.ledger.mark_sent(self.workspace, message.key, n, ts=answer["ts"])
        return answer["ts"]

    def _find(
        self, target: dict, channel: str, key: str, part: int, since: float, thread_ts: str | None
    ) -> str | None:
        """The ts of a part an earlier attempt posted, found by its metadata; None when it is not there."""
        if part and thread_ts:
            method, args = "conversations.replies", {"channel": channel, "ts": thread_ts}
        else:
            method, args = "conversations.history", {"channel": channel}
        args |= {"oldest": f"{since - CLOCK_SKEW:.6f}", "include_all_metadata": True, "limit": 200}
        for page in self._pages(method, target, args):
            for msg in page.get("messages", []):
                meta = msg.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if (
                    meta.get("event_type") == METADATA_EVENT
                    and payload.get("key") == key
                    and payload.get("part") == part
                ):
                    return msg["ts"]
        return None

    def _place(self, message: Message) -> tuple[dict, str]:
        """Where part 0 goes; a recipient Slack does not know is recorded as a failure of the part."""
        try:
            return self._destination(message)
        except Exception as exc:
            self._record_failure(message.key, exc)
            raise

    def _record_failure(self, key: str, exc: Exception) -> None:
        """Part 0 failed before anything was posted: the ledger says why (unless another run has it)."""
        if self.ledger.claim(self.workspace, key, 0, owner=self.owner, run_id=self.run_id).outcome == "claimed":
            self.ledger.mark_failed(self.workspace, key, 0, owner=self.owner, run_id=self.run_id, error=_describe(exc))

    def _destination(self, message: Message) -> tuple[dict, str]:
        """(recipient used, Slack conversation id): the recipient, else the first fallback Slack knows."""
        unknown: list[tuple[dict, str | None]] = []
        target = channel = None
        candidates = [(message.recipient, message.email)] + [
            (fb, fb.get("email")) for fb in message.fallbacks
        ]
        for recipient, email in candidates:
            target = _contract(recipient)
            if target["type"] == "channel":
                channel = self._channel_id(target)
            else:
                channel = self._dm_channel(target, email)
            if channel:
                break
            unknown.append((target, email))
        self.report.unknown_users += [
            UnknownUser(message.key, r, e, delivered_to=target if channel else None) for r, e in unknown
        ]
        if not channel:
            raise RecipientNotFound("users_not_found: Slack knows neither the recipient nor a fallback")
        return target, channel

    def _dm_channel(self, user: dict, email: str | None) -> str | None:
        """The DM conversation with a user, or None when Slack has no user there to message: none
        with that e-mail, or one it will not open a DM with (deactivated since, a bot)."""
        if not email:
            return None
        cached = self.ledger.cached_dm(self.workspace, email)
        if cached:
            return cached
        try:
            found = self.sink.call("users.lookupByEmail", user, {"email": email})["user"]
            if found.get("deleted"):
                return None
            dm = self.sink.call("conversations.open", user, {"users": found["id"]})["channel"]["id"]
        except SlackApiError as exc:
            if exc.response.get("error") in NO_SUCH_USER:
                return None
            raise
        self.ledger.cache_user(self.workspace, email, found["id"], dm)
        return dm

    def _channel_id(self, channel: dict) -> str:
        name = channel["name"].removeprefix("#")
        found = self.ledger.cached_channel(self.workspace, name)
        if found is None:
            args = {"types": "public_channel,private_channel", "exclude_archived": True, "limit": 200}
            for page in self._pages("conversations.list", channel, args):
                ids = {c["name"]: c["id"] for c in page.get("channels", [])}
                self.ledger.cache_channels(self.workspace, ids)
                if name in ids:
                    found = ids[name]
                    break
        if found is None:
            raise RecipientNotFound(f"channel_not_found: the app sees no channel {channel['name']}")
        return found

    def _pages(self, method: str, recipient: dict, args: dict) -> Iterator[dict[str, Any]]:
        """Every page of a cursor-paginated Slack method."""
        while True:
            page = self.sink.call(method, recipient, args)
            yield page
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return
            args = {**args, "cursor": cursor}


# --------------------------------------------------------------------------- Slack transport


class ServerErrorBackoff(RetryHandler):
    """Retries any 5xx (slack_sdk's ServerErrorRetryHandler covers 500 and 503 only)."""

    def _can_retry(self, *, response: HttpResponse | None = None, **context: Any) -> bool:
        return response is not None and response.status_code >= 500


class NotForPosts(RetryHandler):
    """A retry handler for every call but ``chat.postMessage``. A post whose answer was lost
    (a 5xx, a dropped connection) may already be in Slack: it is not repeated blindly but
    left pending, and the next attempt looks for it before posting."""

    def __init__(self, handler: RetryHandler) -> None:
        super().__init__(handler.max_retry_count, handler.interval_calculator)
        self.handler = handler

    def _can_retry(self, *, request: HttpRequest, **context: Any) -> bool:
        posting = urlsplit(request.url).path.endswith("/chat.postMessage")
        return not posting and self.handler.can_retry(request=request, **context)


def retry_handlers() -> list[RetryHandler]:
    """Rate limits are retried for every call, after Slack's Retry-After: Slack refused, nothing was posted."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        RateLimitErrorRetryHandler(max_retry_count=5),
        NotForPosts(ConnectionErrorRetryHandler(max_retry_count=3, interval_calculator=backoff)),
        NotForPosts(ServerErrorBackoff(max_retry_count=3, interval_calculator=backoff)),
    ]


class SlackSink:
    """Slack itself, through the provider's hook; the token stays in the Airflow connection."""

    def __init__(self, conn_id: str = "slack_api_default") -> None:
        # Imported here: the outbox and everything else run without Airflow.
        from airflow.providers.slack.hooks.slack import SlackHook

        self.workspace = f"slack:{conn_id}"
        self._hook = SlackHook(slack_conn_id=conn_id, retry_handlers=retry_handlers())

    def call(self, method: str, recipient: dict, args: dict, title: str | None = None) -> dict[str, Any]:
        # The typed client methods know which Slack methods take JSON, a form or a query string.
        return getattr(self._hook.client, method.replace(".", "_"))(**args).data

    def finish(self) -> None:
        """Nothing to flush: every call has been sent."""
