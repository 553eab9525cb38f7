"""The delivery worker: hands queued records to their channels, with retries and backoff.

The outbox in the database is the queue, so nothing is lost when a process stops: an entry
stays ``pending`` until a channel acknowledged it, and an entry whose worker died while
delivering is leased again once its lease runs out. That means a record can reach a channel
twice (after a crash between the channel's write and the commit), so channels must be
idempotent; the file drop writes the same file name, so the result is still one file.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gateway.errors import DeliveryError
from gateway.models import Channel, Delivery, TargetRecord
from gateway.store import OutboxItem, Store, Transition, TransitionListener

log = logging.getLogger(__name__)


class DeliveryWorker:
    """Delivers due outbox entries through the registered channels.

    :param channels: Channel name → channel (``Plugins.channels``).
    :param route_options: Channel name → options every delivery through it gets; options
        stored with the outbox entry (the route chosen at queueing time) override them.
    :param max_attempts: Attempts before an entry fails for good and needs a person.
    :param backoff_seconds: Wait after the first failed attempt; doubled each time after.
    :param max_backoff_seconds: Cap on that wait.
    :param lease_seconds: How long a claimed entry stays with this worker; must be longer
        than any channel takes, or a slow delivery is started again by another worker.
    :param on_transition: Called after the commit of each state change the worker made, as
        ``(arrival_number, old_state, new_state, actor, reason)``: ``Plugins.state_changed`` fits.
    """

    def __init__(self, store: Store, channels: Mapping[str, Channel], *,
                 route_options: Mapping[str, Mapping[str, Any]] | None = None,
                 max_attempts: int = 8, backoff_seconds: float = 5.0,
                 max_backoff_seconds: float = 3600.0, lease_seconds: float = 300.0,
                 poll_seconds: float = 1.0, batch_size: int = 10,
                 on_transition: TransitionListener | None = None) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.channels = channels
        self.route_options = route_options or {}
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.on_transition = on_transition

    def backoff(self, attempt: int) -> dt.timedelta:
        """Wait after failed attempt number ``attempt`` (1-based): exponential, capped."""
        seconds = self.backoff_seconds * 2 ** min(attempt - 1, 32)
        return dt.timedelta(seconds=min(seconds, self.max_backoff_seconds))

    def run_once(self, now: dt.datetime | None = None) -> int:
        """Deliver what is due at ``now`` (default: the store's clock); returns how many were tried."""
        clock = self.store.clock if now is None else (lambda: now)
        items = self.store.claim_due(clock(), self.lease_seconds, self.batch_size,
                                     max_attempts=self.max_attempts)
        for item in items:
            self._deliver(item, clock)
        return len(items)

    def run_forever(self, stop_event: threading.Event) -> None:
        """Poll until ``stop_event`` is set. Errors are logged and the loop goes on."""
        log.info("delivery worker started (channels: %s)", ", ".join(sorted(self.channels)))
        while not stop_event.is_set():
            try:
                busy = self.run_once()
            except Exception:  # e.g. the database is briefly unreachable: try again later
                log.exception("delivery worker round failed")
                busy = 0
            if busy < self.batch_size:  # a full batch means more may be due right away
                stop_event.wait(self.poll_seconds)
        log.info("delivery worker stopped")

    def _deliver(self, item: OutboxItem, clock: Callable[[], dt.datetime]) -> None:
        try:
            channel = self.channels.get(item.channel)
            if channel is None:  # configuration may be fixed and the gateway restarted
                raise DeliveryError(f"連携チャネル {item.channel!r} が登録されていません",
                                    code="delivery-channel-unknown")
            receipt = channel.deliver(self._delivery(item))
        except DeliveryError as exc:
            self._failed(item, f"{exc.code}: {exc.detail}", exc.permanent, clock())
        except Exception as exc:  # a channel bug is a failed attempt, never a lost record
            log.exception("channel %s raised while delivering %s", item.channel, item.arrival_number)
            self._failed(item, f"{type(exc).__name__}: {exc}", False, clock())
        else:
            made = self.store.complete_delivery(item, receipt, now=clock())
            log.info("delivered %s via %s (%s)", item.arrival_number, item.channel, receipt.receipt_id)
            self._announce(made)

    def _delivery(self, item: OutboxItem) -> Delivery:
        record = TargetRecord(content=self.store.get_blob(item.record.content_sha256),
                              media_type=item.record.media_type, filename=item.record.filename,
                              target=item.record.target)
        return Delivery(arrival_number=item.arrival_number, procedure_code=item.procedure_code,
                        target=item.record.target, record=record, attempt=item.attempt,
                        options={**self.route_options.get(item.channel, {}), **item.options})

    def _failed(self, item: OutboxItem, error: str, permanent: bool, now: dt.datetime) -> None:
        retry_at = now + self.backoff(item.attempt)
        log.warning("delivery of %s via %s failed (attempt %d%s): %s", item.arrival_number,
                    item.channel, item.attempt, ", permanent" if permanent else "", error)
        made = self.store.fail_attempt(item, error, permanent=permanent, next_attempt_at=retry_at,
                                       max_attempts=self.max_attempts, now=now)
        self._announce(made)

    def _announce(self, made: Transition | None) -> None:
        if made is None or self.on_transition is None:
            return
        try:
            self.on_transition(made.arrival_number, made.from_state, made.to_state, made.actor, made.reason)
        except Exception:
            log.exception("transition listener failed for %s", made.arrival_number)
