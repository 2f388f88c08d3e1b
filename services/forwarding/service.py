"""Forwarding to backends: what happens when a leg is recorded or an SDK message arrives."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from services.forwarding.delivery import DeliveryOptions, Forwarder
from services.forwarding.events import SdkMessage, leg_event, make_test_event, message_event
from services.forwarding.subscriptions import Subscriber, SubscriptionOptions
from services.legs.model import Leg, LegEvent
from services.store.outbox import DeadEvent, ForwardingStore

log = logging.getLogger("callrelay.forwarding")


@dataclass(frozen=True)
class ForwardingOptions:
    """Timings of delivery and of subscriptions (tests shorten them)."""

    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    subscription: SubscriptionOptions = field(default_factory=SubscriptionOptions)


class Forwarding:
    """Queues events in the outbox and keeps the delivery and subscription threads going."""

    def __init__(self, outbox: ForwardingStore, forwarder: Forwarder,
                 subscriber: Subscriber | None, events: frozenset[str]) -> None:
        self.outbox, self.forwarder, self.subscriber = outbox, forwarder, subscriber
        self.events = events
        self._stopped = False

    def start(self) -> None:
        """Start the delivery thread in this process unless stopped (idempotent; after fork)."""
        if not self._stopped:
            self.forwarder.start()

    def stop(self) -> None:
        """Stop the threads; queued events stay in the outbox for the next start."""
        self._stopped = True
        if self.subscriber is not None:
            self.subscriber.stop()
        self.forwarder.stop()
        self.outbox.close()  # the calling thread's connection; the forwarder closes its own

    def leg_recorded(self, event: LegEvent, leg: Leg, callback_url: str) -> None:
        """Subscribe a live SDK leg to its messages; queue a `call.leg.updated` if asked."""
        if self.subscriber is not None:
            self.subscriber.leg_recorded(leg, callback_url)
        # Only the callback that carries the leg's current status queues an event; the id
        # (leg and status) makes a repeated or racing callback queue nothing more.
        current = "legs" in self.events and event.status == leg.status
        if current and self.outbox.enqueue(leg_event(leg)):
            self.forwarder.wake()

    def message_received(self, msg: SdkMessage, leg: Leg | None) -> bool:
        """Queue a `call.message` durably; False when it was queued before (or is not wanted)."""
        if "messages" not in self.events:
            log.warning("sdk message not forwarded: FORWARD_EVENTS leaves messages out",
                        extra={"call_sid": msg.call_sid, "message_sid": msg.sid})
            return False
        queued = self.outbox.enqueue(message_event(msg, leg))
        if queued:
            self.forwarder.wake()
        log.info("sdk message queued" if queued else "duplicate sdk message ignored",
                 extra={"call_sid": msg.call_sid, "message_sid": msg.sid})
        return queued

    def dead(self, limit: int = 100) -> list[DeadEvent]:
        """Events that could not be delivered, newest first."""
        return self.outbox.dead(limit)

    def revive(self, event_id: str) -> bool:
        """Queue a dead event again; False when there is no such dead event."""
        revived = self.outbox.revive(event_id)
        if revived:
            self.forwarder.wake()
            log.info("dead event queued again", extra={"event_id": event_id})
        return revived

    def revive_all(self) -> int:
        """Queue every dead event again, oldest first; returns how many."""
        revived = self.outbox.revive_all()
        if revived:
            self.forwarder.wake()
        log.info("dead events queued again", extra={"count": revived})
        return revived

    def delete_dead(self, event_id: str) -> bool:
        """Drop a dead event for good; False when there is no such dead event."""
        deleted = self.outbox.delete_dead(event_id)
        if deleted:
            log.info("dead event deleted", extra={"event_id": event_id})
        return deleted

    def send_test(self, note: str) -> str:
        """Queue a `callrelay.test` event for the backend, delivered like any other; its id."""
        event = make_test_event(note)
        self.outbox.enqueue(event)
        self.forwarder.wake()
        log.info("test event queued", extra={"event_id": event.id})
        return event.id
