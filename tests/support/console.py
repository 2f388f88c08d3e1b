"""A person using the console through Flask's test client: sign-in, pages, forms with their
CSRF token, posted from the console's own origin unless a test says otherwise."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.env import PUBLIC_BASE, RELAY_TOKEN

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')
# What Chromium sends with a form post: it prefers a page.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def csrf_in(page: TestResponse) -> str:
    """The CSRF token in a page's forms."""
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)[:500]
    return match.group(1)


def set_cookies(response: TestResponse) -> dict[str, str]:
    """Each Set-Cookie header of a response, by cookie name."""
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


class Console:
    """One browser on the console, at `base` (callrelay's public URL)."""

    def __init__(self, client: FlaskClient, base: str = PUBLIC_BASE) -> None:
        self.client, self.base = client, base

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, base_url=self.base, **kwargs)

    def sign_in(self, token: str = RELAY_TOKEN, next_path: str | None = None) -> TestResponse:
        """Fill the sign-in form as a person would: its page first, then the post."""
        form = self.get("/console/login")
        assert form.status_code == 200, form.get_data(as_text=True)[:300]
        data = {"csrf_token": csrf_in(form), "token": token}
        if next_path is not None:
            data["next"] = next_path
        return self.client.post("/console/login", data=data, base_url=self.base,
                                headers={"Origin": self.base})

    def csrf(self, page: str = "/console") -> str:
        """The session's CSRF token, as a console page carries it."""
        answer = self.get(page)
        assert answer.status_code == 200, answer.status_code
        return csrf_in(answer)

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: str | None = "",
             origin: str | None = "", headers: dict[str, str] | None = None) -> TestResponse:
        """Post a form; csrf="" takes the session's token, None leaves it out; origin="" is
        the console's own, None sends no Origin header."""
        fields = dict(data or {})
        if csrf is not None:
            fields["csrf_token"] = csrf or self.csrf()
        sent = {"Accept": BROWSER_ACCEPT, **(headers or {})}
        if origin is not None:
            sent["Origin"] = origin or self.base
        return self.client.post(path, data=fields, base_url=self.base, headers=sent)
