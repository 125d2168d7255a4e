"""The event page in real headless Chromium against a running sandbox (the sample photos ingested).

Chromium is Debian's (`/usr/bin/chromium`; .ci/run installs it), driven by Playwright's sync API.
Without it these tests skip, except under CI=true, where a missing browser is an error.
Screenshots go to .artifacts/screenshots/ (gitignored); each is checked to be a PNG of the
viewport's size that is not blank.
"""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import boto3
import pytest
from PIL import Image, ImageDraw, ImageStat

from chalicelib.adapters.table import PhotoTable
from chalicelib.domain.model import EventSettings
from sandbox.runtime import Ports, Sandbox, offline_engines
from sandbox.samples import ensure_samples
from sandbox.stage import PROJECT_DIR
from sandbox.uploads import photo_files, publish_event, upload, wait_for
from tests.support.ci import skip_unless_ci

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = PROJECT_DIR / ".artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}
EVENT = "/e/demo/city-10k"
# The photo view's image has loaded and finished fading in.
VIEWER_IMAGE_SHOWN = (
    "() => { const i = document.getElementById('viewer-img');"
    " return i.complete && i.naturalWidth > 0 && getComputedStyle(i).opacity === '1'; }"
)
API = "/events/demo/city-10k"


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        skip_unless_ci(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def sandbox(browser):
    with Sandbox(ports=Ports.free(), engines=offline_engines, retry_sleep_scale=0.01) as running:
        yield running


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return ensure_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def demo(sandbox, samples):
    """The sample photos in demo/city-10k, and a bib-only event demo/bib-only."""
    res = sandbox.resources
    files, _ = photo_files(samples.photos)
    publish_event(res.table_name, "demo", "city-10k")
    keys = upload(files, samples.photos, bucket=res.bucket, org="demo", event="city-10k")
    outcome = wait_for(keys, table_name=res.table_name, org="demo", event="city-10k", timeout=300, out=None)
    assert not outcome.failed and not outcome.missing
    table = PhotoTable(boto3.client("dynamodb"), res.table_name)
    settings = EventSettings(name="Bib-only Run", date=date.today().isoformat(), published=True)
    table.put_event(
        "demo",
        "bib-only",
        EventSettings(**{**settings.to_dict(), "faces_enabled": False}),
        now="2025-05-01T00:00:00Z",
    )
    return sandbox


@pytest.fixture
def page(browser, demo):
    """A fresh browser context (no storage) at desktop size; any script error or console error
    (a Content-Security-Policy violation is one) fails the test."""
    context = browser.new_context(viewport=DESKTOP)
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None,
    )
    tab.problems = problems
    yield tab
    context.close()
    expected = [p for p in problems if not _expected_console_error(p)]
    assert expected == []


def _expected_console_error(problem: str) -> bool:
    # The browser logs every error status the page's requests get (a bib with no photos is not
    # one; a malformed bib, a face-less selfie and the stubbed 409 and 503 are, and the page shows
    # them). Anything else, a Content-Security-Policy violation included, is a failure.
    return (
        re.search(r"Failed to load resource: the server responded with a status of (4\d\d|503)", problem)
        is not None
    )


# --- helpers -------------------------------------------------------------------------------------


def api(sandbox, path):
    try:
        with urllib.request.urlopen(sandbox.api_url + path, timeout=120) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{path}: {exc.code} {exc.read()[:300]!r}") from exc


def shot(tab, name: str) -> Path:
    """Save a screenshot of the viewport; check it is a PNG of the viewport's size, not blank."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path))
    with Image.open(path) as image:
        assert image.format == "PNG"
        size = tab.viewport_size
        assert image.size == (size["width"], size["height"]), (name, image.size)
        spread = ImageStat.Stat(image.convert("L")).stddev[0]
        assert spread > 10, f"{name} looks blank (pixel standard deviation {spread:.1f})"
    return path


def cards(tab):
    return tab.locator('[data-testid="photo-card"]')


def shown_ids(tab) -> list[str]:
    return tab.eval_on_selector_all('[data-testid="photo-card"]', "cards => cards.map(c => c.dataset.photo)")


def wait_images_loaded(tab, count: int) -> None:
    tab.wait_for_function(
        "n => { const imgs = [...document.querySelectorAll('[data-testid=photo-card] img')];"
        " return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0"
        " && i.classList.contains('in') && getComputedStyle(i).opacity === '1'); }",
        arg=count,
    )


def is_photo(sandbox):
    """A route matcher for the photos themselves (presigned URLs on the sandbox's S3 endpoint)."""
    return lambda url: url.startswith(sandbox.aws_url)


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_the_home_page_leads_to_the_event_page(page, demo):
    page.goto(demo.api_url + "/")
    page.get_by_role("link", name=re.compile("Bib-only Run")).wait_for()
    page.get_by_role("link", name=re.compile("city-10k")).click()
    page.wait_for_url(demo.api_url + EVENT)
    assert page.get_by_role("heading", level=1).inner_text() == "city-10k"
    page.get_by_test_id("photo-card").first.wait_for()


# --- the gallery ---------------------------------------------------------------------------------


def test_gallery_paints_placeholders_first_then_fades_the_images_in_without_shifting(page, demo):
    """Photo requests are held: each tile shows its ThumbHash (as the reference decoder paints it)
    in the box the photo will fill; released, the images fade in and no box moves."""
    from thumbhash.decode import thumbhash_to_rgba

    held = []
    page.route(is_photo(demo), lambda route: held.append(route))
    page.goto(demo.api_url + EVENT)
    expected = api(demo, f"{API}/photos")["photos"]
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=photo-card]').length === n", arg=len(expected)
    )
    assert shown_ids(page) == [photo["photo_id"] for photo in expected]

    boxes_before = [card.bounding_box() for card in cards(page).all()]
    for photo, box in zip(expected, boxes_before, strict=True):
        assert box["width"] / box["height"] == pytest.approx(photo["width"] / photo["height"], rel=0.02)
    painted = page.eval_on_selector_all(
        "[data-testid=photo-card] canvas",
        "canvases => canvases.map(c => ({w: c.width, h: c.height,"
        " data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)}))",
    )
    for photo, canvas in zip(expected, painted, strict=True):
        width, height, reference = thumbhash_to_rgba(base64.b64decode(photo["thumbhash"]))
        assert (canvas["w"], canvas["h"]) == (width, height)
        assert max(abs(a - b) for a, b in zip(canvas["data"], reference, strict=True)) <= 1
    states = page.eval_on_selector_all(
        "[data-testid=photo-card] img", "imgs => imgs.map(i => [i.classList.contains('in'), i.naturalWidth])"
    )
    assert states == [[False, 0]] * len(expected)
    assert held, "no photo was requested"
    shot(page, "gallery-placeholders")

    page.unroute(is_photo(demo))
    for route in held:
        route.continue_()
    wait_images_loaded(page, len(expected))
    sources = page.eval_on_selector_all("[data-testid=photo-card] img", "imgs => imgs.map(i => i.currentSrc)")
    assert [s.split("?")[0] for s in sources] == [p["thumb_url"].split("?")[0] for p in expected]
    assert all(s.split("?")[0].endswith(".grid.webp") for s in sources)  # the grid rendition
    assert [card.bounding_box() for card in cards(page).all()] == boxes_before
    shot(page, "gallery-loaded")


def test_thumbhash_decoder_matches_the_reference_decoder(page, demo):
    """The page's own decoder against thumbhash-python's on hashes of many shapes and colours."""
    from thumbhash.decode import thumbhash_to_rgba
    from thumbhash.encode import image_to_thumbhash

    page.goto(demo.api_url + EVENT)
    page.wait_for_function("() => window.ThumbHash")
    images = []
    for n, (size, mode) in enumerate(
        [
            ((100, 60), "RGB"),
            ((60, 100), "RGB"),
            ((80, 80), "RGB"),
            ((300, 40), "RGB"),
            ((40, 300), "RGB"),
            ((90, 60), "RGBA"),
            ((60, 90), "RGBA"),
            ((64, 64), "RGBA"),
        ]
    ):
        image = Image.new(mode, size, (20 + 30 * n, 200 - 20 * n, 90, 255))
        draw = ImageDraw.Draw(image)
        draw.ellipse(
            (size[0] // 4, size[1] // 5, size[0] - 5, size[1] // 2), fill=(250, 40 * n % 255, 10, 160)
        )
        draw.rectangle(
            (0, size[1] * 2 // 3, size[0] // 2, size[1]), fill=(10, 10, 240, 0 if mode == "RGBA" else 255)
        )
        images.append(image)
    for image in images:
        hash_bytes = base64.b64decode(image_to_thumbhash(image))
        assert bool(hash_bytes[2] & 0x80) == (image.mode == "RGBA")  # the alpha flag
        decoded = page.evaluate(
            "b64 => { const r = ThumbHash.toRGBA(ThumbHash.fromBase64(b64)); return [r.w, r.h, Array.from(r.rgba)]; }",
            base64.b64encode(hash_bytes).decode(),
        )
        width, height, reference = thumbhash_to_rgba(hash_bytes)
        assert decoded[:2] == [width, height]
        assert max(abs(a - b) for a, b in zip(decoded[2], reference, strict=True)) <= 1, image.size


def test_gallery_loads_page_after_page(page, demo):
    expected = [photo["photo_id"] for photo in api(demo, f"{API}/photos")["photos"]]
    listed = []

    def small_pages(route):
        listed.append(route.request.url)
        route.continue_(url=route.request.url.replace("limit=30", "limit=2"))

    page.route(re.compile(r".*/events/demo/city-10k/photos\?.*"), small_pages)
    page.goto(demo.api_url + EVENT)
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=photo-card]').length === n", arg=len(expected)
    )
    assert shown_ids(page) == expected
    assert len(listed) == 2 and "cursor=" in listed[1]
    page.wait_for_selector('[data-testid="load-more"]', state="hidden")


def test_bib_search_shows_the_runners_photos_as_the_api_finds_them(page, demo):
    expected = api(demo, f"{API}/bibs/1234/photos")
    assert len(expected["photos"]) == 2
    page.goto(demo.api_url + EVENT)
    page.get_by_label("Your bib number").fill(" a1234 ")
    page.get_by_test_id("bib-submit").click()
    page.wait_for_function("n => document.querySelectorAll('[data-testid=photo-card]').length === n", arg=2)
    assert shown_ids(page) == [photo["photo_id"] for photo in expected["photos"]]
    page.wait_for_url(re.compile(r"\?bib=1234$"))
    assert page.locator("#results-title").inner_text() == "Photos with bib 1234"
    wait_images_loaded(page, 2)
    shot(page, "bib-search")

    page.get_by_test_id("bib-input").fill("9999")
    page.keyboard.press("Enter")
    nothing = page.get_by_test_id("no-results")
    nothing.wait_for()
    assert "No photos for bib 9999" in nothing.inner_text()
    assert cards(page).count() == 0

    page.get_by_test_id("bib-input").fill("12")
    page.get_by_test_id("bib-submit").click()
    page.wait_for_selector("#alert:not([hidden])")
    assert "not a bib number" in page.locator("#alert").inner_text()  # the API's own message

    page.go_back()  # back to ?bib=9999, then to the first search
    page.go_back()
    page.wait_for_function("n => document.querySelectorAll('[data-testid=photo-card]').length === n", arg=2)


def test_a_shared_bib_search_url_opens_the_search(page, demo):
    page.goto(demo.api_url + EVENT + "?bib=0567")
    expected = api(demo, f"{API}/bibs/0567/photos")["photos"]
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=photo-card]').length === n", arg=len(expected)
    )
    assert page.get_by_test_id("bib-input").input_value() == "0567"


def test_an_empty_bib_search_offers_the_apis_suggestions(page, demo):
    def with_suggestions(route):
        body = {
            "bib": "1243",
            "photos": [],
            "next_cursor": None,
            "suggestions": [{"bib": "1234", "photo_count": 2}],
        }
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route(re.compile(r".*/bibs/1243/photos.*"), with_suggestions)
    page.goto(demo.api_url + EVENT + "?bib=1243")
    suggestion = page.get_by_test_id("no-results").get_by_role("link", name="1234")
    suggestion.click()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=photo-card]').length === 2")
    page.wait_for_url(re.compile(r"\?bib=1234$"))


# --- selfie search -------------------------------------------------------------------------------


def test_selfie_search_needs_consent_before_any_upload_then_shows_the_matches(page, demo, samples, tmp_path):
    sent = []
    page.on("request", lambda request: sent.append(request) if "selfie-search" in request.url else None)
    page.goto(demo.api_url + EVENT)
    selfie_input = page.get_by_test_id("selfie-input")
    assert selfie_input.is_disabled()

    # A phone photo far larger than needed: the page sends it at most 1600 px on its long side.
    big = tmp_path / "selfie.jpg"
    with Image.open(samples.selfie) as face:
        big.write_bytes(jpeg(face.resize((face.width * 6, face.height * 6))))
    # Files forced into the disabled input (as a script could) send nothing: the page asks first.
    selfie_input.set_input_files(str(big))
    consent = page.locator("#consent")
    consent.wait_for()
    page.wait_for_timeout(500)
    assert sent == []

    page.get_by_role("button", name="Cancel").click()
    assert consent.is_hidden() and selfie_input.is_disabled()
    page.get_by_role("button", name="Search with a selfie").click()
    assert consent.is_visible() and "not stored" in consent.inner_text()
    assert sent == []
    page.get_by_test_id("consent-accept").click()
    assert selfie_input.is_enabled()
    bodies = []

    def keep_body(route):
        bodies.append(route.request.post_data_buffer)
        route.continue_()

    page.route(re.compile(r".*/selfie-search.*"), keep_body)
    with page.expect_response(lambda r: "selfie-search" in r.url) as answered:
        selfie_input.set_input_files(str(big))
    assert answered.value.status == 200  # the API refuses a selfie without consent (400)
    (request,) = sent
    assert "consent=true" in request.url and request.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(bodies[0])) as posted:
        assert posted.format == "JPEG" and max(posted.size) == 1600

    expected = api_post_selfie(demo, samples.selfie.read_bytes())
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=photo-card]').length === n", arg=len(expected)
    )
    assert set(shown_ids(page)) == set(expected) and len(expected) == 2
    assert page.locator("#results-title").inner_text() == "Photos matching your selfie"
    wait_images_loaded(page, len(expected))
    shot(page, "selfie-matches")

    # The choice is kept for this event: the next visit goes straight to choosing a selfie.
    page.reload()
    page.wait_for_selector("#selfie-pick:not([hidden])")
    assert selfie_input.is_enabled() and page.locator("#selfie-start").is_hidden()


def api_post_selfie(sandbox, body: bytes) -> list[str]:
    request = urllib.request.Request(
        sandbox.api_url + f"{API}/selfie-search?consent=true",
        data=body,
        method="POST",
        headers={"Content-Type": "image/jpeg"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return [match["photo"]["photo_id"] for match in json.load(response)["matches"]]


def _consented(page) -> None:
    page.get_by_role("button", name="Search with a selfie").click()
    page.get_by_test_id("consent-accept").click()


def test_a_selfie_without_a_face_says_to_try_another_photo(page, demo, samples):
    page.goto(demo.api_url + EVENT)
    _consented(page)
    with page.expect_response(lambda r: "selfie-search" in r.url) as answered:
        page.get_by_test_id("selfie-input").set_input_files(str(samples.photos / "course-km5-003.jpg"))
    assert answered.value.status == 422
    page.wait_for_selector("#alert:not([hidden])")
    assert page.locator("#alert").inner_text() == "No face found, try another photo."


def test_on_a_bib_search_face_matches_join_the_bibs_photos_once_with_a_badge(page, demo, samples):
    bib_photos = [photo["photo_id"] for photo in api(demo, f"{API}/bibs/0567/photos")["photos"]]
    face_photos = api_post_selfie(demo, samples.selfie.read_bytes())
    assert len(set(bib_photos) & set(face_photos)) == 1  # finish-line-002 shows both
    page.goto(demo.api_url + EVENT + "?bib=0567")
    page.wait_for_function("n => document.querySelectorAll('[data-testid=photo-card]').length === n", arg=2)
    _consented(page)
    page.get_by_test_id("selfie-input").set_input_files(str(samples.selfie))
    page.wait_for_function("() => document.querySelectorAll('[data-testid=photo-card]').length === 3")
    assert shown_ids(page) == bib_photos + [pid for pid in face_photos if pid not in bib_photos]
    badged = page.eval_on_selector_all(".badge", "badges => badges.map(b => b.closest('a').dataset.photo)")
    assert badged == [pid for pid in face_photos if pid not in bib_photos]
    assert page.url.endswith("?bib=0567")


def test_a_busy_api_is_asked_again_once_after_retry_after(page, demo):
    calls = []
    busy = {"error": {"code": "ThrottlingException", "message": "Too busy: try again in a moment."}}

    def first_busy(route):
        calls.append(route.request.url)
        if len(calls) == 1 or "bibs/0567" in route.request.url:
            route.fulfill(
                status=503,
                headers={"Retry-After": "0"},
                content_type="application/json",
                body=json.dumps(busy),
            )
        else:
            route.continue_()

    page.route(re.compile(r".*/events/demo/city-10k/bibs/.*"), first_busy)
    page.goto(demo.api_url + EVENT + "?bib=1234")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=photo-card]').length === 2")
    assert len(calls) == 2
    calls.clear()
    page.get_by_test_id("bib-input").fill("0567")
    page.get_by_test_id("bib-submit").click()
    page.wait_for_selector("#alert:not([hidden])")
    assert page.locator("#alert").inner_text() == busy["error"]["message"] and len(calls) == 2


def test_a_bib_only_event_offers_no_selfie_search(page, demo):
    page.goto(demo.api_url + "/e/demo/bib-only")
    page.wait_for_load_state("networkidle")
    assert page.locator("#selfie").is_hidden() and page.get_by_test_id("selfie-input").is_disabled()
    assert page.get_by_role("heading", level=1).inner_text() == "Bib-only Run"


def test_a_409_from_the_selfie_search_hides_the_selfie_option(page, demo, samples):
    body = {
        "error": {"code": "FacesDisabled", "message": "this event is bib-only: search by bib number instead"}
    }
    page.route(
        re.compile(r".*/selfie-search.*"),
        lambda route: route.fulfill(status=409, content_type="application/json", body=json.dumps(body)),
    )
    page.goto(demo.api_url + EVENT)
    _consented(page)
    page.get_by_test_id("selfie-input").set_input_files(str(samples.selfie))
    page.wait_for_selector("#selfie", state="hidden")
    assert page.locator("#alert").inner_text() == body["error"]["message"]


def test_remove_me_sends_the_face_with_consent_and_says_what_changed(page, demo, samples):
    sent: list[tuple[str, str]] = []

    def opt_out(route) -> None:
        sent.append((route.request.url, route.request.headers.get("content-type", "")))
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"opted_out": True}))

    page.route(re.compile(r".*/face-opt-out.*"), opt_out)
    page.goto(demo.api_url + EVENT)
    page.get_by_text("Remove me from face search").click()
    page.get_by_test_id("opt-out-input").set_input_files(str(samples.selfie))
    page.wait_for_selector("#optout-status:has-text('Done: selfie searches')")
    ((url, content_type),) = sent
    assert url.endswith(EVENT.replace("/e/", "/events/") + "/face-opt-out?consent=true")
    assert content_type == "image/jpeg"  # downscaled in the page, like a selfie


# --- the photo view ------------------------------------------------------------------------------


def test_a_photos_share_link_opens_the_same_photo(page, demo, browser):
    photos = api(demo, f"{API}/photos")["photos"]
    page.goto(demo.api_url + EVENT)
    wait_images_loaded(page, len(photos))
    # Keyboard only: tab to the second photo and open it.
    page.get_by_test_id("photo-card").nth(1).focus()
    page.keyboard.press("Enter")
    viewer = page.locator("#viewer")
    viewer.wait_for()
    photo = photos[1]
    page.wait_for_url(re.compile(r"\?photo=" + photo["photo_id"] + "$"))
    _assert_viewer_shows(page, photo)
    page.wait_for_function(VIEWER_IMAGE_SHOWN)
    shot(page, "photo-view")

    page.keyboard.press("ArrowRight")
    _assert_viewer_shows(page, photos[2])
    page.keyboard.press("ArrowLeft")
    link = page.locator("#viewer-link").input_value()
    assert link == f"{demo.api_url}{EVENT}?photo={photo['photo_id']}"
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.dataset.photo") == photo["photo_id"]
    page.wait_for_url(demo.api_url + EVENT)  # the photo's entry left the history

    other = browser.new_context(viewport=PHONE).new_page()
    other.goto(link)
    other.locator("#viewer").wait_for()
    _assert_viewer_shows(other, photo)
    other.context.close()


def _assert_viewer_shows(tab, photo) -> None:
    tab.wait_for_function(
        "id => document.getElementById('viewer-link').value.endsWith(id)", arg=photo["photo_id"]
    )
    assert tab.locator("#viewer-img").get_attribute("src").split("?")[0] == photo["url"].split("?")[0]
    assert tab.locator("#viewer-bibs").inner_text() == (", ".join(photo["bibs"]) or "none recognised")
    assert tab.locator("#viewer-time").get_attribute("datetime") == photo["captured_at"]
    download = tab.locator("#viewer-download")
    assert download.get_attribute("download") == photo["original_filename"]
    assert download.get_attribute("href") == photo["url"]


# --- small screens, and serving under a stage path ------------------------------------------------


def test_the_page_fits_a_360_px_phone(browser, demo):
    context = browser.new_context(viewport=PHONE)
    tab = context.new_page()
    photos = api(demo, f"{API}/photos")["photos"]
    tab.goto(demo.api_url + EVENT)
    wait_images_loaded(tab, len(photos))
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 360
    for card in cards(tab).all():
        box = card.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360
    shot(tab, "phone-gallery")
    tab.get_by_role("button", name="Search with a selfie").click()
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 360
    shot(tab, "phone-consent")
    tab.get_by_test_id("photo-card").first.click()
    tab.locator("#viewer").wait_for()
    tab.wait_for_function(VIEWER_IMAGE_SHOWN)
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 360
    shot(tab, "phone-photo-view")
    context.close()


def test_under_a_stage_path_the_page_calls_the_api_under_it(page, demo):
    """Behind API Gateway the app is under /api: the page derives the API's base from its own URL."""
    called = []

    def strip_stage(route):
        called.append(route.request.url)
        route.continue_(url=route.request.url.replace(demo.api_url + "/api", demo.api_url, 1))

    page.route(re.compile(re.escape(demo.api_url) + r"/api/.*"), strip_stage)
    page.goto(demo.api_url + "/api" + EVENT)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=photo-card]').length === 3")
    assert any(url.startswith(f"{demo.api_url}/api{API}/photos?") for url in called)
    assert not [r for r in called if "/api/api/" in r]
