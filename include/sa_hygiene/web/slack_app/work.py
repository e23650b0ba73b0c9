"""Where the Slack app's work after the answer runs: pools of its own, bounded, apart from the
acknowledgements.

Bolt for Python runs acknowledgements and lazy listeners on one executor (``App``'s
``listener_executor``) unless its ``ThreadListenerRunner`` is given another
``lazy_listener_runner``. Sharing one pool, eight saves waiting on a slow Salesforce left the
next click unanswered past Slack's three seconds. So acknowledgements keep Bolt's executor and
the work runs here, in lanes: ``salesforce`` (saving a form: it may wait on Salesforce) and
``slack`` (everything else: Slack calls and the state database). Each lane takes ``workers``
jobs at once and ``queued`` more; work that cannot even be queued is not started, and the
listener's ``busy(body, client)`` tells the user so (their form kept), on a small pool of its
own, so that a full lane never delays an answer either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from slack_bolt.lazy_listener.internals import build_runnable_function
from slack_bolt.lazy_listener.runner import LazyListenerRunner
from slack_bolt.request import BoltRequest

log = logging.getLogger(__name__)

LANES = {"salesforce": (4, 8), "slack": (8, 64)}  # lane: (workers, queued)
NOTICES = (2, 64)  # the "busy" notices: (workers, queued); beyond that they are only logged


def lane(name: str):
    """Mark a lazy listener as work of lane ``name`` (default ``slack``)."""

    def mark(fn):
        fn.lane = name
        return fn

    return mark


class _Pool:
    """A thread pool that refuses work beyond ``workers + queued`` instead of queueing it for ever."""

    def __init__(self, name: str, workers: int, queued: int):
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"sa-hygiene-{name}")
        self.slots = threading.BoundedSemaphore(workers + queued)

    def submit(self, fn: Callable[[], None]) -> bool:
        if not self.slots.acquire(blocking=False):
            return False

        def run():
            try:
                fn()
            finally:
                self.slots.release()

        try:
            self.executor.submit(run)
        except RuntimeError:  # shut down
            self.slots.release()
            return False
        return True

    def shutdown(self, wait: bool) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=True)  # what has not started never will


class LazyWork(LazyListenerRunner):
    """Bolt's lazy listener runner, with a bounded pool per lane and a "busy" notice when full."""

    def __init__(self, logger: logging.Logger, lanes: dict[str, tuple[int, int]] | None = None):
        self.logger = logger
        self.pools = {name: _Pool(name, *size) for name, size in (lanes or LANES).items()}
        self.notices = _Pool("notices", *NOTICES)
        self.refused = 0  # work not started because its lane was full

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        runnable = build_runnable_function(func=function, logger=self.logger, request=request)
        if self.pools[getattr(function, "lane", "slack")].submit(runnable):
            return
        self.refused += 1
        busy = getattr(function, "busy", None)
        log.warning("Slack app: %s not started, its lane is full", getattr(function, "__name__", "work"))
        if busy is not None:
            client = request.context.client
            if not self.notices.submit(lambda: self._notice(busy, request.body, client)):
                log.warning("Slack app: too busy even to say so; a user was not told")

    @staticmethod
    def _notice(busy, body: dict, client) -> None:
        try:
            busy(body, client)
        except Exception as exc:  # a notice that fails is logged, never raised into a pool
            log.warning("Slack app: could not tell a user the app is busy: %s", type(exc).__name__)

    def shutdown(self, wait: bool = True) -> None:
        """Drop what is queued; ``wait`` for what runs (bounded by the clients' timeouts)."""
        for pool in [*self.pools.values(), self.notices]:
            pool.shutdown(wait)
