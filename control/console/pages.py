"""The HTML shells of the pages: navigation, a heading, an environment picker and the regions ``console.js`` fills
from the JSON endpoints. Nothing secret or user-supplied is rendered here (the login form echoes only a fixed
message and a same-site path, escaped)."""

from __future__ import annotations

import html

#: Page name -> (path, title, what the page answers).
PAGES = {
    "overview": ("/", "Overview", "What serves where, and is it healthy?"),
    "models": ("/models", "Models", "Registry versions, their gate decisions and quality."),
    "rollouts": ("/rollouts", "Rollouts", "Canary and shadow decisions, with every check."),
    "drift": ("/drift", "Drift", "Drift reports over time, per version and track."),
    "try": ("/try", "Try it", "Send a text to a track; tell it when it is wrong."),
}
#: Pages whose data is per environment.
PER_ENVIRONMENT = {"overview", "rollouts", "drift", "try"}


def _nav(current: str) -> str:
    items = []
    for name, (path, title, _) in PAGES.items():
        attr = ' aria-current="page"' if name == current else ""
        items.append(f'<li><a href="{path}"{attr}>{title}</a></li>')
    return f'<nav aria-label="Console pages"><ul>{"".join(items)}</ul></nav>'


def _shell(name: str, title: str, main: str, *, signed_in: bool, actions_enabled: bool) -> str:
    if not actions_enabled:
        account = '<span class="badge muted" title="no token configured">read-only</span>'
    elif signed_in:
        account = ('<form method="post" action="/logout" class="inline"><button type="submit">Sign out</button>'
                   "</form>")
    else:
        account = '<a class="button" href="/login">Sign in to act</a>'
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} · kube-sentiment console</title>"
        "<link rel='stylesheet' href='/static/console.css'>"
        "<link rel='icon' href='data:,'>"
        "<script src='/static/console.js' defer></script></head>"
        f"<body data-page='{name}'>"
        "<a class='skip' href='#main'>Skip to content</a>"
        "<header><span class='brand'>kube-sentiment</span>"
        f"{_nav(name)}<div class='account'>{account}</div></header>"
        f"<main id='main' tabindex='-1'>{main}</main>"
        "</body></html>"
    )


def render(name: str, *, signed_in: bool, actions_enabled: bool) -> str:
    """The shell of page ``name``."""
    _, title, question = PAGES[name]
    picker = ""
    if name in PER_ENVIRONMENT:
        picker = ("<label class='env'>Environment <select id='environment' name='environment'></select></label>")
    main = (
        f"<div class='title'><h1>{title}</h1>{picker}</div><p class='lead'>{question}</p>"
        "<div id='status' role='status' aria-live='polite'></div>"
        "<noscript><p>This page draws its tables and charts with JavaScript; the same data is at "
        "<code>/api/…</code> as JSON.</p></noscript>"
        f"<div id='content' data-loading='true'></div>"
    )
    return _shell(name, title, main, signed_in=signed_in, actions_enabled=actions_enabled)


def login(error: str | None, next_path: str, actions_enabled: bool) -> str:
    """The sign-in form (the token is typed, never shown back)."""
    message = f"<p class='error' role='alert'>{html.escape(error)}</p>" if error else ""
    main = (
        "<div class='title'><h1>Sign in</h1></div>"
        "<p class='lead'>Actions (rollouts, feedback) need the console token, kept in a Kubernetes Secret.</p>"
        f"{message}"
        "<form method='post' action='/login' class='card login'>"
        f"<input type='hidden' name='next' value='{html.escape(next_path, quote=True)}'>"
        "<label for='token'>Token</label>"
        "<input id='token' name='token' type='password' autocomplete='current-password' required>"
        "<button type='submit'>Sign in</button></form>"
    )
    return _shell("login", "Sign in", main, signed_in=False, actions_enabled=actions_enabled)
