"""app.json (Heroku), render.yaml (Render), .python-version and .env.example stay true to the code.

The variable lists are derived from the code, so adding a variable to config/settings.py without
describing it in the deploy files fails here.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from config import metrics_dir
from config.settings import SANDBOX_SECRETS, ConfigError, Settings
from sandbox.devtools import ROOT, procfile_web
from tests.support.settings_source import settings_variables

# Read by callrelay but set by the platform (PORT), or for a laptop only (HOST, which scripts/run
# sets to 127.0.0.1; a platform routes to 0.0.0.0): describing them would only invite breaking
# them.
PLATFORM_SET = {"PORT", "HOST"}
_ENVIRON_READ = re.compile(r"\benviron(?:\.get\(|\[)\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
_COMMENTED_KEY = re.compile(r"^\s*#\s*- key: ([A-Z][A-Z0-9_]*)", re.MULTILINE)


def runtime_variables() -> set[str]:
    """Every variable the service reads: Settings', gunicorn's, the app's and the metrics'."""
    sources = [ROOT / "app.py", *sorted((ROOT / "config").glob("*.py"))]
    names = {n for path in sources for n in _ENVIRON_READ.findall(path.read_text())}
    return (names | settings_variables() | {metrics_dir.ENV}) - PLATFORM_SET


def test_scan_finds_gunicorn_and_app_variables():
    assert {"WEB_CONCURRENCY", "GUNICORN_CONNECTIONS", "LOG_LEVEL"} <= runtime_variables()


def test_app_json_describes_every_variable_and_generates_the_relay_token():
    app = json.loads((ROOT / "app.json").read_text())
    env = app["env"]
    missing = runtime_variables() - set(env)
    assert not missing, f"describe these in app.json: {sorted(missing)}"
    assert not PLATFORM_SET & set(env)
    assert all(spec.get("description") for spec in env.values())
    assert env["RELAY_API_TOKENS"]["generator"] == "secret"
    required = {name for name, spec in env.items() if spec.get("required", True)
                and "generator" not in spec and "value" not in spec}
    assert required == {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"}
    assert app["formation"]["web"]["quantity"] >= 1
    assert app["success_url"] == "/readyz"


def test_render_yaml_runs_the_procfile_command_and_describes_every_variable():
    text = (ROOT / "render.yaml").read_text()
    blueprint = yaml.safe_load(text)
    (web,) = [s for s in blueprint["services"] if s["type"] == "web"]
    assert web["runtime"] == "python" and web["healthCheckPath"] == "/readyz"
    assert web["buildCommand"] == "pip install -r requirements.txt"
    assert shlex.split(web["startCommand"]) == shlex.split(procfile_web())
    env = {v["key"]: v for v in web["envVars"]}
    assert env["RELAY_API_TOKENS"] == {"key": "RELAY_API_TOKENS", "generateValue": True}
    assert env["TWILIO_AUTH_TOKEN"].get("sync") is False
    assert all("value" not in v or isinstance(v["value"], str) for v in env.values())
    described = set(env) | set(_COMMENTED_KEY.findall(text))
    missing = runtime_variables() - described
    assert not missing, f"describe these in render.yaml: {sorted(missing)}"
    assert not PLATFORM_SET & described


def test_python_version_is_pinned_the_way_heroku_and_render_read_it():
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version), "major.minor only: both platforms take the latest patch"
    assert tuple(map(int, version.split("."))) >= (3, 11)


def test_env_example_is_a_development_config_without_a_token():
    values = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert values["RELAY_API_TOKENS"] == ""  # scripts/run generates one
    assert values["TWILIO_API_BASE_URL"].startswith("http://127.0.0.1:")
    assert set(values) <= runtime_variables()
    Settings.from_env({**values, "RELAY_API_TOKENS": "x" * 32})  # valid once a token is added
    # Its secrets are published: refused beside anything but the local Twilio mock.
    assert {values["TWILIO_AUTH_TOKEN"], values["CONFERENCE_TICKET_SECRET"]} == SANDBOX_SECRETS
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**values, "RELAY_API_TOKENS": "x" * 32,
                           "TWILIO_API_BASE_URL": "https://api.twilio.com"})
    assert [p.split(" ")[0] for p in raised.value.problems] == ["TWILIO_AUTH_TOKEN",
                                                                 "CONFERENCE_TICKET_SECRET"]


_DOC_LINK = re.compile(r"\b((?:docs/[\w-]+|README)\.md)(?:#([\w-]+))?")


def heading_anchors(path: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, punctuation dropped)."""
    text = (ROOT / path).read_text()
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # not code comments
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("name", ["app.json", "render.yaml"])
def test_deploy_files_point_at_pages_and_sections_that_exist(name):
    text = (ROOT / name).read_text()
    links = _DOC_LINK.findall(text)
    # A section named in words goes stale silently when the docs move things: an anchor is
    # checked here.
    assert text.count("README") == sum(path == "README.md" for path, _ in links), \
        f"{name}: name documentation by path and #anchor"
    for path, anchor in links:
        assert (ROOT / path).is_file(), f"{name}: {path} does not exist"
        assert anchor in heading_anchors(path), f"{name}: no section {path}#{anchor}"
