"""The Twilio mock's call resources: Calls (fetch, list), UserDefinedMessages, subscriptions.

Handlers run with the mock's lock held and answer `(status, body)` or raise `TwilioError`.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Request

from sandbox.mock_records import (
    LIVE_STATUSES,
    MAX_CONTENT_CHARS,
    TERMINAL_STATUSES,
    MockCall,
    MockState,
    RecordedMessage,
    RecordedSubscription,
    TwilioError,
    not_found,
    now,
)


class CallsAPI(MockState):
    """Handlers for `…/Calls.json`, `…/Calls/{sid}.json` and a call's message resources."""

    def _require_live(self, call_sid: str, path: str, what: str) -> None:
        call = self._calls.get(call_sid)
        if call is None and self.strict_calls:
            raise not_found(path)
        if call is not None and call.status not in LIVE_STATUSES:
            raise TwilioError(400, 21220, f"Invalid call state: call is {call.status}, "
                              f"not ringing or in-progress. Cannot create {what}.")

    def _call_uri(self, call_sid: str) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}"

    def _call_json(self, call: MockCall) -> dict[str, Any]:
        uri = self._call_uri(call.sid)
        ended = call.status in TERMINAL_STATUSES
        return {
            "sid": call.sid, "parent_call_sid": call.parent_call_sid,
            "account_sid": self.account_sid, "from": call.from_, "from_formatted": call.from_,
            "to": call.to, "to_formatted": call.to, "status": call.status,
            "direction": call.direction, "api_version": "2010-04-01",
            "date_created": call.date_created, "date_updated": call.date_updated,
            "start_time": call.date_created, "end_time": call.date_updated if ended else None,
            "duration": None, "price": None, "price_unit": "USD", "answered_by": None,
            "caller_name": None, "forwarded_from": None, "group_sid": None, "queue_time": "0",
            "phone_number_sid": None, "trunk_sid": None, "annotation": None,
            "subresource_uris": {
                "user_defined_messages": f"{uri}/UserDefinedMessages.json",
                "user_defined_message_subscriptions": f"{uri}/UserDefinedMessageSubscriptions.json",
            },
            "uri": f"{uri}.json",
        }

    def _fetch_call(self, request: Request, call_sid: str) -> tuple[int, Any]:
        call = self._calls.get(call_sid)
        if call is None:
            raise not_found(request.path)
        return 200, self._call_json(call)

    def _list_calls(self, request: Request) -> tuple[int, Any]:
        filters = {name: request.args[name] for name in ("ParentCallSid", "Status", "To", "From")
                   if name in request.args}
        try:
            size = min(max(int(request.args.get("PageSize", 50)), 1), 1000)
            page = max(int(request.args.get("Page", 0)), 0)
        except ValueError as exc:
            raise TwilioError(400, 20001, "Invalid paging parameter") from exc
        matches = [call for call in reversed(self._calls.values())  # newest first, as Twilio
                   if filters.get("ParentCallSid", call.parent_call_sid) == call.parent_call_sid
                   and filters.get("Status", call.status) == call.status
                   and filters.get("To", call.to) == call.to
                   and filters.get("From", call.from_) == call.from_]
        start = page * size
        rows = matches[start:start + size]

        def page_uri(number: int) -> str:
            query = urlencode({**filters, "PageSize": size, "Page": number})
            return f"/2010-04-01/Accounts/{self.account_sid}/Calls.json?{query}"

        return 200, {
            "calls": [self._call_json(call) for call in rows],
            "first_page_uri": page_uri(0), "uri": page_uri(page),
            "next_page_uri": page_uri(page + 1) if start + size < len(matches) else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "page": page, "page_size": size, "start": start,
            "end": start + max(len(rows) - 1, 0),
        }

    def _create_message(self, request: Request, call_sid: str) -> tuple[int, Any]:
        key = request.form.get("IdempotencyKey") or None
        # A known key on the same call replays the first answer: how Twilio de-duplicates retries.
        message = next((m for m in self._messages if key and (m.call_sid, m.idempotency_key)
                        == (call_sid, key)), None) or self._new_message(request, call_sid, key)
        return 201, {"account_sid": self.account_sid, "call_sid": message.call_sid,
                     "sid": message.sid, "date_created": message.date_created}

    def _new_message(self, request: Request, call_sid: str, key: str | None) -> RecordedMessage:
        content = request.form.get("Content")
        if content is not None and len(content) > MAX_CONTENT_CHARS:
            raise TwilioError(400, 32703, "Content size exceeds the limit of "
                              f"{MAX_CONTENT_CHARS} characters ({len(content)} given)")
        try:
            parsed = json.loads(content or "")
        except ValueError as exc:
            raise TwilioError(400, 32702, "Invalid content in the POST request to the "
                              "UserDefinedMessage Resource. Only data in JSON format is "
                              "supported.") from exc
        self._require_live(call_sid, request.path, "UserDefinedMessage")
        message = RecordedMessage("KX" + secrets.token_hex(16), call_sid, content or "", key,
                                  now())
        self._messages.append(message)
        self._emit(f"message {call_sid} {message.sid} "
                   f"{json.dumps(parsed, ensure_ascii=False, separators=(',', ':'))}")
        return message

    def _create_subscription(self, request: Request, call_sid: str) -> tuple[int, Any]:
        key = request.form.get("IdempotencyKey") or None
        sub = next((s for s in self._subscriptions if key and (s.call_sid, s.idempotency_key)
                    == (call_sid, key)), None) or self._new_subscription(request, call_sid, key)
        return 201, {"account_sid": self.account_sid, "call_sid": sub.call_sid, "sid": sub.sid,
                     "date_created": sub.date_created,
                     "uri": f"{self._call_uri(call_sid)}/UserDefinedMessageSubscriptions/"
                            f"{sub.sid}.json"}

    def _new_subscription(self, request: Request, call_sid: str,
                          key: str | None) -> RecordedSubscription:
        callback = request.form.get("Callback")
        if not callback:
            raise TwilioError(400, 20001, "Missing required parameter Callback in the post body")
        try:
            parts = urlsplit(callback)
            scheme, host = parts.scheme, parts.hostname
        except ValueError:
            scheme, host = "", None
        if scheme not in ("http", "https") or not host or "_" in host:
            raise TwilioError(400, 11100, f"Callback is not a valid URL: {callback}")
        method = request.form.get("Method", "POST").upper()
        if method not in ("GET", "POST"):
            raise TwilioError(400, 21209, "Method must be GET or POST")
        self._require_live(call_sid, request.path, "UserDefinedMessageSubscription")
        sub = RecordedSubscription("ZY" + secrets.token_hex(16), call_sid, callback, method, key,
                                   now())
        self._subscriptions.append(sub)
        self._emit(f"subscription {call_sid} {sub.sid} {method} {callback}")
        return sub

    def _delete_subscription(self, request: Request, call_sid: str, sid: str) -> tuple[int, Any]:
        sub = next((s for s in self._subscriptions
                    if (s.sid, s.call_sid, s.active) == (sid, call_sid, True)), None)
        if sub is None:
            raise not_found(request.path)
        sub.active = False
        self._emit(f"unsubscribe {call_sid} {sid}")
        return 204, None
