"""callrelay's composition root: `create_app` wires settings, store, Twilio and routes."""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config.settings import ForwardingSettings, Settings
from services.forwarding.delivery import Forwarder
from services.forwarding.service import Forwarding, ForwardingOptions
from services.forwarding.subscriptions import Subscriber
from services.observability.logs import configure_logging
from services.observability.metrics import Metrics
from services.observability.redaction import redact_in_logs
from services.store.open import Stores, open_stores
from services.store.outbox import ForwardingStore
from services.twilio.conference_access import ConferenceAccess
from services.twilio.dial_policy import DialPolicy
from services.twilio.lazy import LazyGateway
from services.twilio.port import TwilioGateway
from services.use_cases.call_history import CallHistory
from services.use_cases.lookup_budget import LookupBudget
from services.use_cases.notify import Notifier
from web.api import api_blueprint
from web.conferences import conferences_blueprint
from web.console.blueprint import console_blueprint
from web.console.parts import ConsoleParts
from web.dead_events import dead_events_blueprint
from web.errors import register_error_handlers
from web.json_provider import StrictJSONProvider
from web.ops import ops_blueprint
from web.request_logs import install_request_ids, register_request_logs
from web.security import BearerTokens, PublicURLs, TwilioSignatures
from web.twilio_hooks import twilio_blueprint

# Bodies larger than this are refused (413) before they are read whole: a /notify body holds
# at most 10,000 characters of content, which JSON escaping can at most sextuple.
MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, *, store: Stores | None = None,
               twilio: TwilioGateway | None = None,
               forwarding: ForwardingOptions | None = None) -> Flask:
    """Build the Flask app; anything not given is built from the environment."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    redact_in_logs(*settings.secrets)
    install_request_ids()

    metrics = Metrics()
    stores = store or open_stores(settings.store_url, settings.retention,
                                   settings.store_pool_size, settings.redis_topology)
    if stores.redis is not None:
        stores.redis.on_not_replicated.append(metrics.unreplicated_writes.inc)
    twilio = twilio or LazyGateway(lambda: rest_gateway(settings, metrics))
    metrics.worker_started(settings.serving.workers)
    history = (CallHistory(stores.history, keep_content=settings.message_log_content,
                           observer=metrics) if stores.history is not None else None)
    relay = build_forwarding(settings.forwarding, stores.outbox, twilio,
                             forwarding or ForwardingOptions(), metrics, history)
    notifier = Notifier(stores.legs, twilio, settings.notify_deadline_s,
                        settings.max_call_duration_s, conferences=stores.conferences,
                        history=history,
                        budget=LookupBudget(settings.lookup_budget, observer=metrics),
                        observer=metrics)

    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["callrelay.store"] = stores
    app.extensions["callrelay.forwarding"] = relay
    register_proxy_fix(app, settings)
    register_request_logs(app, metrics)
    urls = PublicURLs(settings.public_base_url)
    tokens = BearerTokens(settings.relay_api_tokens)
    dial_policy = DialPolicy.for_caller_id(settings.twilio_caller_id, settings.dial_allow,
                                           settings.dial_sip_domains)
    conference_access = ConferenceAccess(settings.conference_ticket_secret,
                                         open=settings.dial_conferences_open)
    app.register_blueprint(twilio_blueprint(settings, TwilioSignatures(settings, urls), urls,
                                            dial_policy, metrics, stores.legs, relay,
                                            conferences=stores.conferences,
                                            conference_access=conference_access,
                                            history=history))
    app.register_blueprint(api_blueprint(tokens, notifier, stores.legs, history))
    app.register_blueprint(conferences_blueprint(tokens, stores.conferences, stores.legs))
    app.register_blueprint(dead_events_blueprint(tokens, relay))
    app.register_blueprint(ops_blueprint(stores.legs, stores.outbox, metrics))
    if settings.console_enabled:  # otherwise every /console route is a 404
        app.register_blueprint(console_blueprint(settings, ConsoleParts(
            stores.legs, stores.conferences, notifier, relay,
            store_kind=settings.store_url.split(":", 1)[0], history=history)))
    register_error_handlers(app)
    if relay is not None:
        start_forwarding(app, relay)
    log = logging.getLogger("callrelay")
    if settings.dial_conferences_open:
        log.warning("DIAL_CONFERENCES=open: anyone with a Voice SDK access token can join any "
                    "conference by its name, hear it, and receive every /notify sent to it; "
                    "set CONFERENCE_TICKET_SECRET instead to let your backend decide who joins")
    log.info("callrelay ready", extra={"store": settings.store_url.split(":", 1)[0],
                                       "pid": os.getpid()})
    return app


def rest_gateway(settings: Settings, metrics: Metrics) -> TwilioGateway:
    """The Twilio REST adapter (imported here: see services/twilio/lazy.py)."""
    from services.twilio.rest import TwilioRestGateway

    return TwilioRestGateway(settings, observer=metrics)


def register_proxy_fix(app: Flask, settings: Settings) -> None:
    """Believe X-Forwarded-For and -Proto from TRUSTED_PROXY_HOPS proxies (Heroku's and Render's
    routers), and their -Host, -Port and -Prefix only while the public URL is unknown."""
    hops = settings.trusted_proxy_hops
    # With the public URL known (PUBLIC_BASE_URL, or the platform's), nothing is built from
    # the request's host: a forged X-Forwarded-Host has nothing to change.
    rebuild = 0 if settings.public_base_url else hops
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops,  # type: ignore[method-assign]
                                x_host=rebuild, x_port=rebuild, x_prefix=rebuild)


def build_forwarding(config: ForwardingSettings, outbox: ForwardingStore,
                     twilio: TwilioGateway, options: ForwardingOptions,
                     metrics: Metrics | None = None,
                     history: CallHistory | None = None) -> Forwarding | None:
    """The outbox's delivery thread and the subscriber, when FORWARD_URL is set."""
    if not config.enabled:
        return None
    assert config.url is not None
    delivery = replace(options.delivery, max_attempts=config.max_attempts)
    forwarder = Forwarder(outbox, config.url, config.secrets, delivery, observer=metrics,
                          on_settled=history.forwarding_settled if history else None)
    subscriber = (Subscriber(outbox, twilio, options.subscription)
                  if config.subscribe_messages else None)
    return Forwarding(outbox, forwarder, subscriber, config.events)


def start_forwarding(app: Flask, forwarding: Forwarding) -> None:
    """Start delivery in this process, and in any process forked after create_app ran."""
    # create_app runs in each gunicorn worker after the fork; the check on every request
    # covers a process forked later (it starts its own thread).
    forwarding.start()
    app.before_request(forwarding.start)
