"""A Redis primary killed (SIGKILL) in the middle of a burst of signed status callbacks, a
replica promoted by Sentinel: with REDIS_MIN_REPLICAS=1 no callback that was acknowledged to
Twilio (2xx) lost its leg. Without the setting the loss is only counted (docs/operations.md
gives the figures measured): it depends on timing, and is what the setting exists for.

Two scenarios: the primary dies with its replicas in step (on one machine they rarely lag), and
cut off from them for a moment just before (a partition: the replicas stall and the primary
drops their links), the case where acknowledged writes exist only on the primary.
Two replicas, so that after the failover one is left and writes can be acknowledged again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate

import pytest

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.redis_topologies import LocalSentinel
from tests.support.relay import Relay

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
SENDERS = 4
# Callbacks acknowledged before the kill, and after the new primary took over.
BEFORE, AFTER = 300, 100
# Generous: a failover here takes about two seconds (1 s to notice, then the election).
DEADLINE_S = 60
# How long the replicas are cut off before the primary dies, in the "lagging" scenario (under
# WAIT's timeout: with REDIS_MIN_REPLICAS the writes meanwhile wait, then fail).
STALL_S = 0.3


@dataclass
class Burst:
    """Signed status callbacks, each for a new leg, sent by several threads until stopped."""

    relay: Relay
    answers: list[tuple[str, int]] = field(default_factory=list)  # (CallSid, HTTP status)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self) -> None:
        while not self.stop.is_set():
            sid = new_call_sid()
            status = self.relay.webhook("/twilio/status", {
                "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid,
                "CallStatus": "ringing", "From": "client:alice", "To": "+15005550006",
                "Direction": "inbound", "SequenceNumber": "0",
                "Timestamp": formatdate(usegmt=True),
                "CallbackSource": "call-progress-events"}).status_code
            with self.lock:
                self.answers.append((sid, status))

    def acknowledged(self) -> list[str]:
        with self.lock:
            return [sid for sid, status in self.answers if 200 <= status < 300]

    def count(self) -> int:
        return len(self.acknowledged())


def _until(check, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def run_failover(tmp_path, twilio, min_replicas: int, lagging: bool) -> tuple[int, int, int]:
    """(acknowledged, acknowledged but lost, refused) over one burst with a failover."""
    deployment = LocalSentinel(tmp_path / "redis", replicas=2).start()
    try:
        env = make_env(tmp_path, twilio, STORE_URL=deployment.url,
                       REDIS_SENTINELS=deployment.addresses,
                       REDIS_SENTINEL_MASTER=deployment.MASTER,
                       REDIS_MIN_REPLICAS=str(min_replicas))
        app = create_app(Settings.from_env(env))
        burst = Burst(Relay(app.test_client()))
        senders = [threading.Thread(target=burst.send) for _ in range(SENDERS)]
        for sender in senders:
            sender.start()
        try:
            _until(lambda: burst.count() >= BEFORE, "the burst to start")
            old = deployment.primary_port()
            if lagging:
                deployment.cut_replicas()
                time.sleep(STALL_S)  # the burst goes on, on the primary alone
            deployment.primary.kill()  # SIGKILL: no goodbye to the replicas
            for replica in deployment.replicas:
                replica.resume()
            _until(lambda: deployment.primary_port() not in (None, old),
                   "Sentinel to promote a replica")
            after = burst.count()
            _until(lambda: burst.count() >= after + AFTER, "callbacks acknowledged again")
        finally:
            burst.stop.set()
            for sender in senders:
                sender.join(timeout=30)
        legs = app.extensions["callrelay.store"].legs
        acknowledged = burst.acknowledged()
        lost = [sid for sid in acknowledged if legs.get(sid) is None]
        refused = sum(1 for _, status in burst.answers if status >= 500)
        app.extensions["callrelay.store"].close()
        return len(acknowledged), len(lost), refused
    finally:
        deployment.stop()


SCENARIOS = pytest.mark.parametrize("lagging", [False, True], ids=["in-step", "lagging"])


@SCENARIOS
def test_no_acknowledged_callback_is_lost_with_min_replicas(tmp_path, twilio, capsys, lagging):
    acknowledged, lost, refused = run_failover(tmp_path, twilio, 1, lagging)
    with capsys.disabled():
        print(f"\nREDIS_MIN_REPLICAS=1 ({'lagging' if lagging else 'in step'}): {acknowledged} "
              f"acknowledged, {lost} of them lost, {refused} answered 503")
    assert acknowledged >= BEFORE + AFTER
    assert lost == 0


@SCENARIOS
def test_failover_without_min_replicas_is_measured(tmp_path, twilio, capsys, lagging):
    """Without the setting an acknowledged write may be lost; how many is printed, not
    asserted (it depends on timing)."""
    acknowledged, lost, refused = run_failover(tmp_path, twilio, 0, lagging)
    with capsys.disabled():
        print(f"\nREDIS_MIN_REPLICAS=0 ({'lagging' if lagging else 'in step'}): {acknowledged} "
              f"acknowledged, {lost} of them lost, {refused} answered 503")
    assert acknowledged >= BEFORE + AFTER
