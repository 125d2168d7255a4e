"""The runners' web page as the app serves it, through the contract-checking test client.

The page's behaviour in a browser is tests/test_browser.py; here: what the HTML says, which events
it shows, its headers, and how its assets are served and cached.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from chalicelib import clients
from chalicelib.domain.errors import ThrottlingException
from chalicelib.services import web
from tests.support.api import Unavailable
from tests.support.photos import publish

HOOKS = ("bib-input", "bib-submit", "selfie-input", "consent-accept", "no-results", "load-more")


class Page(HTMLParser):
    """The parts of an HTML page the tests read: elements by id and test id, links, labels."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag == "button":
            self._button: dict[str, str | None] | None = self.elements[-1][1]
            self._button["text"] = ""

    def handle_endtag(self, tag):
        if tag == "button":
            self._button = None

    def handle_data(self, data):
        self.text.append(data)
        if getattr(self, "_button", None) is not None:
            self._button["text"] += data.strip()

    def find(self, **wanted: str) -> list[dict[str, str | None]]:
        return [attrs for _, attrs in self.elements if all(attrs.get(k) == v for k, v in wanted.items())]

    def tags(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]


def page(client, path: str) -> tuple[int, dict[str, str], str]:
    response = client.http.get(path)
    body = response.body.decode() if isinstance(response.body, bytes) else response.body
    return response.status_code, response.headers, body


# --- the home page -----------------------------------------------------------------------------


def test_home_lists_only_published_events_latest_first(client, table):
    publish(table, "acme", "spring-10k", name="Spring 10K", date="2025-04-01")
    publish(table, "acme", "autumn-half", name="Autumn Half", date="2025-10-12")
    publish(table, "acme", "draft", name="Secret Draft", date="2025-12-01", published=False)
    publish(table, "other", "city-run", name="City Run", date="2025-06-01")

    status, headers, body = page(client, "/")

    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    links = [a["href"] for a in Page(body).tags("a") if (a["href"] or "").startswith("/e/")]
    assert links == ["/e/acme/autumn-half", "/e/other/city-run", "/e/acme/spring-10k"]
    assert "Secret Draft" not in body and "/e/acme/draft" not in body
    assert "12 October 2025" in body


def test_home_without_events_says_so(client):
    status, _, body = page(client, "/")
    assert status == 200 and "No events yet" in body


def test_home_escapes_event_names(client, table):
    publish(table, "acme", "e1", name='<script>alert("x")</script> & Co')
    _, _, body = page(client, "/")
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in body


# --- the event page ----------------------------------------------------------------------------


def test_event_page_has_its_heading_and_every_hook(client, table):
    publish(table, "acme", "city-10k", name="City 10K", date="2025-05-04")

    status, _, body = page(client, "/e/acme/city-10k")

    assert status == 200
    html = Page(body)
    assert "<title>City 10K – race photos</title>" in body
    assert html.find(id="event-name") and ">City 10K</h1>" in body
    assert '<time datetime="2025-05-04">4 May 2025</time>' in body
    for hook in HOOKS:
        assert len(html.find(**{"data-testid": hook})) == 1, hook
    (main,) = html.find(id="app")
    assert main["data-org"] == "acme" and main["data-event"] == "city-10k" and main["data-faces"] == "on"


def test_every_control_has_a_label(client, table):
    publish(table, "acme", "e1")
    _, _, body = page(client, "/e/acme/e1")
    html = Page(body)
    labelled = {label["for"] for label in html.tags("label")}
    for control in html.tags("input"):
        assert control["id"] in labelled, control
    buttons = html.tags("button")
    assert len(buttons) >= 10
    for button in buttons:
        # Named by its words, or (the icon-only ones: ‹ › ×) by aria-label.
        assert button.get("aria-label") or re.search("[A-Za-z]{2}", button["text"] or ""), button


def test_event_page_escapes_the_event_name(client, table):
    publish(table, "acme", "e1", name='Run "fast" <b>& win</b>')
    _, _, body = page(client, "/e/acme/e1")
    assert "<b>" not in body
    assert "Run &quot;fast&quot; &lt;b&gt;&amp; win&lt;/b&gt;" in body


def test_bib_only_event_page_hides_the_selfie_search(client, table):
    publish(table, "acme", "e1", faces_enabled=False)
    _, _, body = page(client, "/e/acme/e1")
    html = Page(body)
    (main,) = html.find(id="app")
    assert main["data-faces"] == "off"
    (selfie,) = html.find(id="selfie")
    assert "hidden" in selfie


@pytest.mark.parametrize("path", ["/e/acme/draft", "/e/acme/unknown", "/e/nobody/e1", "/e/-bad/e1"])
def test_unpublished_unknown_or_malformed_event_is_the_404_page(client, table, path):
    publish(table, "acme", "draft", name="Secret Draft", published=False)
    status, headers, body = page(client, path)
    assert status == 404 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Event not found" in body and "Secret Draft" not in body
    assert headers["Cache-Control"] == "no-store"


def test_pages_carry_a_content_security_policy(client, table):
    publish(table, "acme", "e1")
    for path in ("/", "/e/acme/e1", "/e/acme/nope"):
        _, headers, _ = page(client, path)
        policy = headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "img-src 'self' data: blob: https: http:" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_pages_load_assets_with_their_content_hash(client, table):
    publish(table, "acme", "e1")
    _, _, body = page(client, "/e/acme/e1")
    html = Page(body)
    sources = [s["src"] for s in html.tags("script")] + [
        link["href"] for link in html.tags("link") if link.get("rel") == "stylesheet"
    ]
    assert sources == [
        f"/assets/thumbhash.js?v={web.asset('thumbhash.js').version}",
        f"/assets/app.js?v={web.asset('app.js').version}",
        f"/assets/app.css?v={web.asset('app.css').version}",
    ]
    assert all("defer" in s for s in html.tags("script"))
    assert "<script>" not in body and "style=" not in body  # nothing inline: the policy forbids it


def test_throttled_table_is_the_busy_page_with_retry_after(client, monkeypatch):
    monkeypatch.setattr(clients, "table", lambda: Unavailable(ThrottlingException("slow")))
    clients.event_gate.cache_clear()
    for path in ("/", "/e/acme/e1"):
        status, headers, body = page(client, path)
        assert status == 503 and headers["Retry-After"] == "1" and "Try again" in body, path


def test_unexpected_failure_is_the_500_page_without_details(client, monkeypatch):
    monkeypatch.setattr(clients, "table", lambda: Unavailable(RuntimeError("boom")))
    clients.event_gate.cache_clear()
    for path in ("/", "/e/acme/e1"):
        status, _, body = page(client, path)
        assert status == 500 and "boom" not in body and "Something went wrong" in body, path


# --- where the app is served: API Gateway's stage ----------------------------------------------


@pytest.mark.parametrize(
    ("request_path", "route_path", "root"),
    [
        ("/", "/", ""),
        ("/e/acme/e1", "/e/acme/e1", ""),
        ("/api/e/acme/e1", "/e/acme/e1", "/api"),
        ("/api", "/", "/api"),
        ("/api/", "/", "/api"),
        ("/photos/v2/e/acme/e1", "/e/acme/e1", "/photos/v2"),
        ('/a"b/e/acme/e1', "/e/acme/e1", ""),
        ("", "/", ""),
    ],
)
def test_root_is_the_request_path_less_the_route(request_path, route_path, root):
    assert web.root_path(request_path, route_path) == root


def test_pages_under_a_stage_link_everything_under_it(table, monkeypatch):
    publish(table, "acme", "e1", name="E1")
    monkeypatch.setattr(clients, "table", lambda: table)
    home = web.index_page(table=table, root="/api")
    assert 'href="/api/e/acme/e1"' in home and 'href="/api/assets/app.css?v=' in home
    event = web.event_page("acme", "e1", gate=clients.event_gate(), root="/api")
    assert 'src="/api/assets/app.js?v=' in event and 'href="/api/"' in event


# --- assets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "application/javascript; charset=utf-8"),
        ("thumbhash.js", "application/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ],
)
def test_assets_have_their_type_and_are_cached_for_a_year_by_hash(client, name, content_type):
    version = web.asset(name).version
    status, headers, body = page(client, f"/assets/{name}?v={version}")
    assert status == 200 and headers["Content-Type"] == content_type
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["ETag"] == f'"{version}"' and headers["X-Content-Type-Options"] == "nosniff"
    assert body == (web.WEB_DIR / name).read_text()


def test_an_asset_without_its_current_hash_is_cached_briefly(client):
    for path in ("/assets/app.js", "/assets/app.js?v=0123456789abcdef"):
        status, headers, _ = page(client, path)
        assert status == 200 and headers["Cache-Control"] == "public, max-age=300", path


def test_an_asset_the_client_has_is_304(client):
    etag = web.asset("app.css").etag
    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}'):
        response = client.http.get("/assets/app.css", headers={"If-None-Match": if_none_match})
        assert response.status_code == 304 and not response.body and response.headers["ETag"] == etag
    stale = client.http.get("/assets/app.css", headers={"If-None-Match": '"0000000000000000"'})
    assert stale.status_code == 200


@pytest.mark.parametrize("name", ["nope.js", "event.html", "index.html", "..%2Fapp.py", "app.JS"])
def test_only_the_pages_assets_are_served(client, name):
    status, headers, _ = page(client, f"/assets/{name}")
    assert status == 404 and headers["Content-Type"] == "text/plain; charset=utf-8"


def test_scripts_and_styles_stay_small():
    sizes = {name: len(a.body.encode()) for name, a in web.assets().items()}
    assert set(sizes) == {"app.js", "thumbhash.js", "app.css"}
    assert sum(sizes.values()) < 40_000, sizes
