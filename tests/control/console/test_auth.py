"""Who may act: no token configured -> every action 403; a token configured -> actions need it (401 without),
a cookie session also needs its CSRF token (403 without), cross-site requests are refused, read pages are open
unless locked, and the token never appears in any response."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from control.console.app import create_app
from control.console.auth import SESSION_COOKIE, Auth
from control.console.settings import ConsoleSettings
from model.errors import ConfigError

TOKEN = "unit-test-token-0123456789abcdef"
ACTIONS = [("/api/feedback", {"environment": "local", "track": "stable", "prediction_id": "r:0", "label": "x"}),
           ("/api/rollouts/promote", {"environment": "local"})]
READS = ["/", "/models", "/rollouts", "/drift", "/try", "/api/environments", "/api/overview", "/api/models",
         "/api/rollouts", "/api/drift"]
#: The local source with a predictor nobody listens on: the auth checks run before any upstream call.
PREDICTORS = ("local/stable=http://127.0.0.1:9",)


def client(tmp_path: Path, token: str | None = TOKEN, **settings: object) -> TestClient:
    token_file = None
    if token is not None:
        token_file = tmp_path / "token"
        token_file.write_text(token)
    app = create_app(ConsoleSettings(predictors=PREDICTORS, token_file=token_file, **settings))  # type: ignore[arg-type]
    return TestClient(app, base_url="http://console.test")


@pytest.fixture
def signed_in(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    """A client with a session cookie, and that session's CSRF token."""
    with client(tmp_path) as c:
        response = c.post("/login", data={"token": TOKEN, "next": "/try"}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/try"
        csrf = c.get("/api/environments").json()["csrf_token"]
        assert csrf
        yield c, csrf


@pytest.mark.parametrize(("path", "body"), ACTIONS)
def test_without_a_configured_token_every_action_is_403(tmp_path: Path, path: str, body: dict) -> None:
    with client(tmp_path, token=None) as c:
        response = c.post(path, json=body, headers={"authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 403 and "actions are disabled" in response.json()["error"]
        assert c.get("/api/environments").json()["actions_enabled"] is False
        assert "read-only" in c.get("/").text


@pytest.mark.parametrize(("path", "body"), ACTIONS)
def test_actions_without_the_token_are_401(tmp_path: Path, path: str, body: dict) -> None:
    with client(tmp_path) as c:
        response = c.post(path, json=body)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
        wrong = c.post(path, json=body, headers={"authorization": "Bearer not-the-token-at-all"})
        assert wrong.status_code == 401 and "not the console token" in wrong.json()["error"]


def test_a_bearer_token_passes_the_check(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        response = c.post("/api/rollouts/promote", json={"environment": "local"},
                          headers={"authorization": f"Bearer {TOKEN}"})
        # past authentication: the action itself is refused because no promote command is configured
        assert response.status_code == 403 and "KS_CONSOLE_PROMOTE_COMMAND" in response.json()["error"]


def test_a_session_needs_its_csrf_token(signed_in: tuple[TestClient, str]) -> None:
    c, csrf = signed_in
    body = {"environment": "local"}
    missing = c.post("/api/rollouts/promote", json=body)
    assert missing.status_code == 403 and "CSRF" in missing.json()["error"]
    forged = c.post("/api/rollouts/promote", json=body, headers={"x-csrf-token": "0" * 64})
    assert forged.status_code == 403
    good = c.post("/api/rollouts/promote", json=body, headers={"x-csrf-token": csrf})
    assert good.status_code == 403 and "not configured" in good.json()["error"]  # past auth and CSRF


def test_cross_site_requests_are_refused(signed_in: tuple[TestClient, str]) -> None:
    c, csrf = signed_in
    body = {"environment": "local"}
    for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "https://evil.example"}):
        response = c.post("/api/rollouts/promote", json=body, headers={"x-csrf-token": csrf, **headers})
        assert response.status_code == 403, headers
    predict = c.post("/api/predict", json={"environment": "local", "track": "stable", "text": "hi"},
                     headers={"sec-fetch-site": "cross-site"})
    assert predict.status_code == 403
    login = c.post("/login", data={"token": TOKEN}, headers={"origin": "https://evil.example"})
    assert login.status_code == 403


def test_session_cookie_is_httponly_strict_and_logout_ends_it(tmp_path: Path) -> None:
    with client(tmp_path, secure_cookies=True) as c:
        response = c.post("/login", data={"token": TOKEN}, follow_redirects=False)
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
        assert TOKEN not in cookie
        out = c.post("/logout", follow_redirects=False)
        assert out.status_code == 303 and f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]


def test_a_wrong_token_does_not_sign_in_and_sign_ins_are_rate_limited(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        statuses = [c.post("/login", data={"token": f"guess-{i}"}).status_code for i in range(11)]
        assert statuses[:10] == [401] * 10 and statuses[10] == 429
        assert SESSION_COOKIE not in c.cookies
        assert c.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 429


def test_sessions_of_another_token_are_void(tmp_path: Path) -> None:
    old = Auth("an-older-token-0123456789")
    new = Auth(TOKEN)
    session = old.new_session()
    assert old.session_valid(session) and not new.session_valid(session)
    assert not new.session_valid(session.replace(".", "x", 1)) and not new.session_valid(None)
    expired = Auth(TOKEN, session_hours=-1.0)
    assert not expired.session_valid(expired.new_session())


def test_read_pages_are_open_by_default(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        for path in READS:
            assert c.get(path).status_code == 200, path


def test_read_pages_can_be_locked(tmp_path: Path) -> None:
    with client(tmp_path, read_requires_token=True) as c:
        for path in READS:
            response = c.get(path, follow_redirects=False)
            if path.startswith("/api/"):
                assert response.status_code == 401, path
            else:
                assert response.status_code == 303 and response.headers["location"] == f"/login?next={path}", path
        assert c.get("/api/models", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/login").status_code == 200
        assert c.get("/static/console.js").status_code == 200


def test_the_token_is_never_in_a_response(signed_in: tuple[TestClient, str]) -> None:
    c, csrf = signed_in
    responses = [c.get(path) for path in [*READS, "/login", "/static/console.js", "/static/console.css"]]
    responses.append(c.post("/login", data={"token": "wrong-token-0123456789"}))
    responses.append(c.post("/api/rollouts/start", json={"environment": "local", "version": "x"},
                            headers={"x-csrf-token": csrf}))
    for response in responses:
        assert TOKEN not in response.text and TOKEN not in str(response.headers), response.url


def test_security_headers(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        page = c.get("/")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
        assert c.get("/api/environments").headers["cache-control"] == "no-store"
        assert not re.search(r"<script>|\son\w+=|https?://(?!www\.w3\.org)", page.text + c.get("/login").text)


def test_a_token_file_that_cannot_work_is_a_config_error(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16"):
        create_app(ConsoleSettings(predictors=PREDICTORS, token_file=short))
    with pytest.raises(ConfigError, match="cannot read the console token file"):
        create_app(ConsoleSettings(predictors=PREDICTORS, token_file=tmp_path / "missing"))


@pytest.mark.integration
def test_rollout_actions_run_the_configured_command(tmp_path: Path) -> None:
    """The start command gets the environment and version it was asked for, and its output is kept."""
    script = tmp_path / "record.py"
    script.write_text("import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(' '.join(sys.argv[2:]))\n")
    out = tmp_path / "args.txt"
    command = f"{sys.executable} {script} {out} rollout run {{environment}} {{version}}"
    with client(tmp_path, start_command=command, action_log_dir=tmp_path / "actions") as c:
        headers = {"authorization": f"Bearer {TOKEN}"}
        assert c.get("/api/environments").json()["rollout_actions"] == ["start"]
        bad = c.post("/api/rollouts/start", json={"environment": "local", "version": "7; rm -rf /"}, headers=headers)
        assert bad.status_code == 400 and "whole number" in bad.json()["error"]
        elsewhere = c.post("/api/rollouts/start", json={"environment": "moon", "version": 7}, headers=headers)
        assert elsewhere.status_code == 400 and "unknown environment" in elsewhere.json()["error"]
        response = c.post("/api/rollouts/start", json={"environment": "local", "version": 7}, headers=headers)
        assert response.status_code == 202, response.text
        record = response.json()
        assert record["argv"][-4:] == ["rollout", "run", "local", "7"] and record["action"] == "start"
        from tests.support import wait_until

        wait_until(lambda: out.exists() and out.read_text() == "rollout run local 7", 60, "the start command")
        history = wait_until(lambda: [a for a in c.get("/api/rollouts").json()["actions"]
                                      if a["exit_code"] is not None], 60, "the command's exit code")
        assert history[0]["exit_code"] == 0 and Path(history[0]["log"]).exists()
