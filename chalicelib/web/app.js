// The event page: gallery, bib search, selfie search and the photo view, over the JSON API.
// The API is on this origin, under the same root as this page (`/api` behind API Gateway's
// stage): its base is this page's path less `/e/{org}/{event}`.
"use strict";
(function () {
  var app = document.getElementById("app");
  if (!app || !window.fetch) return;
  var $ = function (id) { return document.getElementById(id); };
  var org = app.dataset.org, eventId = app.dataset.event;
  var root = location.pathname.replace(/\/e\/[^/]+\/[^/]+\/?$/, "");
  var api = root + "/events/" + encodeURIComponent(org) + "/" + encodeURIComponent(eventId);
  var pageUrl = location.origin + location.pathname;
  var PAGE = 30, EAGER = 6, SELFIE_SIDE = 1600;
  var consentKey = "snaprace.selfie-consent." + org + "/" + eventId;

  var grid = $("grid"), more = $("more"), statusLine = $("status"), alertLine = $("alert");
  var none = $("no-results"), title = $("results-title"), showAll = $("show-all");
  var viewer = $("viewer");

  // What the grid shows: a listing (gallery or one bib) read page by page, or selfie matches.
  var view = { kind: "gallery", bib: null, photos: [], ids: {}, cursor: null, done: false };
  var generation = 0; // bumped by every new search: answers to older ones are dropped
  var loading = false;

  // --- the API ------------------------------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  // fetch JSON; a 503 is retried once after its Retry-After; errors carry the API's message.
  function call(path, options, retried) {
    return fetch(api + path, options).then(function (res) {
      if (res.status === 503 && !retried) {
        var after = parseFloat(res.headers.get("Retry-After"));
        var wait = isNaN(after) ? 1 : Math.min(10, Math.max(0, after));
        return new Promise(function (ok) { setTimeout(ok, wait * 1000); }).then(function () {
          return call(path, options, true);
        });
      }
      return res.json().catch(function () { return null; }).then(function (body) {
        if (res.ok && body) return body;
        var err = (body && body.error) || {};
        throw new ApiError(res.status, err.code || "HttpError",
          err.message || "The server answered " + res.status + ". Try again.");
      });
    }, function () {
      throw new ApiError(0, "Offline", "Could not reach the server. Check your connection and try again.");
    });
  }

  // --- rendering ----------------------------------------------------------------------------

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }

  function describe(photo) {
    var bibs = photo.bibs || [];
    var what = bibs.length ? "Photo of bib " + bibs.join(", ") : "Race photo";
    return what + (photo.photographer ? ", by @" + photo.photographer : "");
  }

  function when(iso) {
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  }

  function photoLink(id) {
    return pageUrl + "?photo=" + encodeURIComponent(id);
  }

  // A tile reserves its box from the photo's width and height, paints the ThumbHash at once,
  // and fades the image in over it once loaded.
  function tile(photo, index) {
    var ratio = photo.width / photo.height;
    var li = el("li", "tile");
    li.style.setProperty("--r", ratio.toFixed(4));
    var a = el("a", "card");
    a.href = "?photo=" + encodeURIComponent(photo.photo_id);
    a.dataset.testid = "photo-card";
    a.dataset.photo = photo.photo_id;
    var canvas = el("canvas");
    canvas.setAttribute("aria-hidden", "true");
    if (photo.thumbhash && window.ThumbHash) window.ThumbHash.paint(canvas, photo.thumbhash);
    var img = el("img");
    img.alt = describe(photo);
    img.width = photo.width;
    img.height = photo.height;
    img.decoding = "async";
    img.loading = index < EAGER ? "eager" : "lazy";
    reveal(img);
    img.src = photo.thumb_url || photo.url;
    a.appendChild(canvas);
    a.appendChild(img);
    if (photo.match === "face") a.appendChild(el("span", "badge", "face match"));
    li.appendChild(a);
    return li;
  }

  function reveal(img) {
    var done = function () {
      img.classList.add("in");
      if (img.parentNode) img.parentNode.classList.add("loaded");
    };
    img.addEventListener("load", done);
    img.addEventListener("error", function () { img.classList.add("broken"); });
    if (img.complete && img.naturalWidth) done();
  }

  function addPhotos(photos) {
    var fragment = document.createDocumentFragment();
    photos.forEach(function (photo) {
      if (view.ids[photo.photo_id]) return;
      view.ids[photo.photo_id] = true;
      fragment.appendChild(tile(photo, view.photos.length));
      view.photos.push(photo);
    });
    grid.appendChild(fragment);
  }

  function say(text) { statusLine.textContent = text || ""; }

  function warn(text) {
    alertLine.textContent = text || "";
    alertLine.hidden = !text;
  }

  function count(n) { return n === 1 ? "1 photo" : n + " photos"; }

  // --- listings: the gallery and bib search -------------------------------------------------

  function reset(kind, bib) {
    generation++;
    view = { kind: kind, bib: bib || null, photos: [], ids: {}, cursor: null, done: false };
    loading = false;
    grid.textContent = "";
    none.hidden = true;
    none.textContent = "";
    more.hidden = true;
    warn("");
    showAll.hidden = kind === "gallery";
    title.textContent = kind === "bib" ? "Photos with bib " + bib
      : kind === "selfie" ? "Photos matching your selfie" : "All photos";
  }

  function listingPath() {
    var path = view.kind === "bib" ? "/bibs/" + encodeURIComponent(view.bib) + "/photos" : "/photos";
    return path + "?limit=" + PAGE + (view.cursor ? "&cursor=" + encodeURIComponent(view.cursor) : "");
  }

  function loadPage() {
    if (loading || view.done || view.kind === "selfie") return Promise.resolve();
    loading = true;
    var mine = generation;
    more.disabled = true;
    say(view.photos.length ? "Loading more photos…" : "Loading photos…");
    return call(listingPath()).then(function (body) {
      if (mine !== generation) return;
      if (view.kind === "bib" && body.bib && body.bib !== view.bib) {
        view.bib = body.bib; // as the API normalised it (A1234 and 1234 are one bib)
        title.textContent = "Photos with bib " + body.bib;
        remember({ bib: body.bib }, true);
      }
      addPhotos(body.photos || []);
      view.cursor = body.next_cursor;
      view.done = !body.next_cursor;
      loading = false;
      more.disabled = false;
      more.hidden = view.done;
      if (view.done && !view.photos.length) nothingFound(body.suggestions);
      else say(view.done ? count(view.photos.length) + (view.kind === "bib" ? " with bib " + view.bib : "")
        : count(view.photos.length) + " so far");
      watch();
    }, function (err) {
      if (mine !== generation) return;
      loading = false;
      more.disabled = false;
      say("");
      warn(err.message);
    });
  }

  function nothingFound(suggestions) {
    say("");
    none.hidden = false;
    if (view.kind !== "bib") {
      none.appendChild(el("p", null, "No photos here yet. Photographers may still be uploading: come back later."));
      return;
    }
    none.appendChild(el("p", null, "No photos for bib " + view.bib + "."));
    if (suggestions && suggestions.length) {
      var p = el("p", null, "Did you mean ");
      suggestions.forEach(function (s, n) {
        var a = el("a", null, s.bib);
        a.href = "?bib=" + encodeURIComponent(s.bib);
        a.dataset.bib = s.bib;
        a.title = count(s.photo_count);
        if (n) p.appendChild(document.createTextNode(n === suggestions.length - 1 ? " or " : ", "));
        p.appendChild(a);
      });
      p.appendChild(document.createTextNode("?"));
      none.appendChild(p);
    }
    if (!$("selfie").hidden) {
      var b = el("button", "link", "Try a selfie search instead");
      b.type = "button";
      b.addEventListener("click", function () { $("selfie-start").hidden ? $("selfie-input").focus() : startSelfie(); });
      none.appendChild(b);
    }
  }

  // Load the next page before the user reaches the end (and keep loading while the end shows).
  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    if (entries.some(function (e) { return e.isIntersecting; })) loadPage();
  }, { rootMargin: "0px 0px 800px 0px" }) : null;

  function watch() {
    if (!observer) return;
    observer.disconnect();
    if (!view.done && view.kind !== "selfie") observer.observe(more);
  }

  function searchBib(bib, push) {
    reset("bib", bib);
    remember({ bib: bib }, !push);
    return loadPage();
  }

  function gallery(push) {
    reset("gallery");
    remember({}, !push);
    return loadPage();
  }

  // --- the address: ?bib=1234 and ?photo={id} are shareable ---------------------------------

  function remember(params, replace) {
    var query = new URLSearchParams();
    if (params.bib) query.set("bib", params.bib);
    if (params.photo) query.set("photo", params.photo);
    var url = location.pathname + (query.toString() ? "?" + query : "");
    if (url === location.pathname + location.search) return;
    history[replace ? "replaceState" : "pushState"]({ snaprace: true }, "", url);
  }

  function fromAddress() {
    var query = new URLSearchParams(location.search);
    var bib = (query.get("bib") || "").trim();
    var photo = query.get("photo");
    // Selfie matches stand on the address without a bib, as the gallery does.
    var listing = bib ? view.kind === "bib" && view.bib === bib : view.kind !== "bib";
    if (!listing || (!view.photos.length && !loading && !view.done)) {
      if (bib) {
        $("bib-input").value = bib;
        reset("bib", bib);
      } else reset("gallery");
      loadPage();
    }
    if (photo) openPhoto(photo, false);
    else if (viewer.open) closeViewer();
  }

  $("bib-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var bib = $("bib-input").value.trim();
    if (!bib) {
      warn("Type the number on your bib.");
      $("bib-input").focus();
      return;
    }
    searchBib(bib, true);
  });

  showAll.addEventListener("click", function () {
    $("bib-input").value = "";
    gallery(true);
  });

  more.addEventListener("click", function () { loadPage(); });

  none.addEventListener("click", function (event) {
    var bib = event.target.dataset && event.target.dataset.bib;
    if (!bib) return;
    event.preventDefault();
    $("bib-input").value = bib;
    searchBib(bib, true);
  });

  window.addEventListener("popstate", fromAddress);

  // --- selfie search: consent first, per event; downscaled in the browser ------------------

  var selfie = $("selfie"), consent = $("consent"), pick = $("selfie-pick"), input = $("selfie-input");
  var start = $("selfie-start");

  function consented() {
    try { return localStorage.getItem(consentKey) === "accepted"; } catch (e) { return false; }
  }

  function choose(answer) {
    try {
      if (answer) localStorage.setItem(consentKey, answer);
      else localStorage.removeItem(consentKey);
    } catch (e) { /* private browsing: asked again next time */ }
  }

  function selfieState() {
    var yes = consented();
    consent.hidden = true;
    start.hidden = yes;
    pick.hidden = !yes;
    input.disabled = !yes;
  }

  function startSelfie() {
    consent.hidden = false;
    start.hidden = true;
    $("consent-title").focus();
  }

  function noSelfie(message) {
    selfie.hidden = true;
    input.disabled = true;
    if (message) warn(message);
  }

  start.addEventListener("click", startSelfie);
  $("consent-accept").addEventListener("click", function () {
    choose("accepted");
    selfieState();
    input.focus();
    input.click();
  });
  $("consent-cancel").addEventListener("click", function () {
    choose("declined");
    selfieState();
    start.focus();
  });
  $("consent-withdraw").addEventListener("click", function () {
    choose(null);
    selfieState();
    start.focus();
  });

  input.addEventListener("change", function () {
    var file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    if (!consented()) { startSelfie(); return; } // never upload without consent
    searchSelfie(file);
  });

  var SENDABLE = ["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "image/gif", "image/tiff"];

  // Downscale to at most SELFIE_SIDE px as JPEG; a file the browser cannot decode (HEIC in most
  // browsers) goes as it is, for the server to decode.
  function shrink(file) {
    var url = URL.createObjectURL(file);
    var img = new Image();
    img.src = url;
    return img.decode().then(function () {
      var scale = Math.min(1, SELFIE_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
      var canvas = el("canvas");
      canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
      canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
      canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
      return new Promise(function (ok) { canvas.toBlob(ok, "image/jpeg", 0.85); });
    }).catch(function () { return null; }).then(function (blob) {
      URL.revokeObjectURL(url);
      return blob || file;
    });
  }

  function searchSelfie(file) {
    var keepBib = view.kind === "bib";
    var mine = generation;
    warn("");
    say("Looking for you in the photos…");
    return shrink(file).then(function (body) {
      var type = SENDABLE.indexOf(body.type) >= 0 ? body.type : "application/octet-stream";
      return call("/selfie-search?consent=true", { method: "POST", headers: { "Content-Type": type }, body: body });
    }).then(function (result) {
      if (mine !== generation) return;
      var found = (result.matches || []).map(function (m) {
        var photo = Object.assign({}, m.photo);
        if (keepBib && !photo.match) photo.match = "face"; // found by face among a bib's photos
        return photo;
      });
      if (keepBib) {
        // On a bib search, face matches join the bib's photos, each photo once.
        addPhotos(found);
        none.hidden = !!view.photos.length;
        say(count(view.photos.length) + " with bib " + view.bib + " or your face");
      } else {
        reset("selfie");
        addPhotos(found);
        remember({}, false);
        if (!found.length) {
          none.hidden = false;
          none.appendChild(el("p", null, "No photos matched your selfie. Try another one, or search by bib."));
        }
        say(count(found.length) + " matching your selfie");
      }
      watch();
      $("results").focus();
    }, function (err) {
      if (mine !== generation) return;
      say("");
      if (err.status === 422) warn("No face found, try another photo.");
      else if (err.status === 409 || err.status === 410) noSelfie(err.message);
      else warn(err.message);
    });
  }

  // "Remove me": the face of one photo is opted out of this event's face search.
  var optInput = $("optout-input"), optStatus = $("optout-status");
  optInput.addEventListener("change", function () {
    var file = optInput.files && optInput.files[0];
    optInput.value = "";
    if (!file) return;
    optStatus.textContent = "Removing your face from this event's face search…";
    shrink(file).then(function (body) {
      var type = SENDABLE.indexOf(body.type) >= 0 ? body.type : "application/octet-stream";
      // Choosing the photo under the text above is the consent the route asks for.
      return call("/face-opt-out?consent=true", { method: "POST", headers: { "Content-Type": type }, body: body });
    }).then(function () {
      optStatus.textContent = "Done: selfie searches of this event no longer show your photos. They stay findable by bib number.";
    }, function (err) {
      optStatus.textContent = err.status === 422 ? "No face found, try another photo." : err.message;
    });
  });

  // --- the photo view ------------------------------------------------------------------------

  var current = null, opener = null, pushed = false;
  var frame = $("viewer-frame"), big = $("viewer-img"), note = $("viewer-note");

  function show(photo) {
    current = photo;
    window.ThumbHash && window.ThumbHash.paint(frame.querySelector("canvas"), photo.thumbhash || "");
    big.classList.remove("in");
    frame.classList.remove("loaded");
    big.removeAttribute("src");
    big.width = photo.width;
    big.height = photo.height;
    big.alt = describe(photo);
    reveal(big);
    big.src = photo.url;
    var bibs = photo.bibs || [];
    $("viewer-title").textContent = bibs.length ? "Bib " + bibs.join(", ") : "Race photo";
    $("viewer-bibs").textContent = bibs.length ? bibs.join(", ") : "none recognised";
    $("viewer-by").textContent = photo.photographer ? "@" + photo.photographer : "not named";
    var time = $("viewer-time");
    time.dateTime = photo.captured_at;
    time.textContent = when(photo.captured_at);
    var download = $("viewer-download");
    download.href = photo.url;
    download.setAttribute("download", photo.original_filename || photo.photo_id + ".jpg");
    $("viewer-link").value = photoLink(photo.photo_id);
    note.textContent = "";
    var at = view.photos.indexOf(photo);
    $("viewer-prev").hidden = at <= 0;
    $("viewer-next").hidden = at < 0 || at >= view.photos.length - 1;
  }

  function find(id) {
    for (var n = 0; n < view.photos.length; n++) if (view.photos[n].photo_id === id) return view.photos[n];
    return null;
  }

  function openPhoto(id, push) {
    var photo = find(id);
    var ready = photo ? Promise.resolve(photo) : call("/photos/" + encodeURIComponent(id));
    if (!viewer.open) opener = document.activeElement;
    return ready.then(function (p) {
      if (p.status && p.status !== "PROCESSED") throw new ApiError(404, "PhotoNotFound", "This photo could not be processed.");
      show(p);
      if (!viewer.open) viewer.showModal();
      if (push) {
        var query = new URLSearchParams(location.search);
        remember({ bib: query.get("bib"), photo: id }, false);
        pushed = true;
      }
    }, function (err) {
      warn(err.status === 404 || err.status === 400 ? "That photo is not in this event (any more)." : err.message);
      remember({ bib: new URLSearchParams(location.search).get("bib") }, true);
    });
  }

  function closeViewer() {
    if (viewer.open) viewer.close();
  }

  viewer.addEventListener("close", function () {
    var query = new URLSearchParams(location.search);
    if (query.get("photo")) {
      if (pushed) history.back();
      else remember({ bib: query.get("bib") }, true);
    }
    pushed = false;
    if (opener && opener.focus) opener.focus();
    opener = null;
  });

  function step(delta) {
    var at = view.photos.indexOf(current);
    var next = at >= 0 ? view.photos[at + delta] : null;
    if (!next) return;
    show(next);
    var query = new URLSearchParams(location.search);
    remember({ bib: query.get("bib"), photo: next.photo_id }, true);
    if (delta > 0 && at + delta >= view.photos.length - 3) loadPage().then(function () { show(current); });
  }

  grid.addEventListener("click", function (event) {
    var card = event.target.closest && event.target.closest("a.card");
    if (!card || event.ctrlKey || event.metaKey || event.shiftKey || event.button) return;
    event.preventDefault();
    opener = card;
    openPhoto(card.dataset.photo, true);
  });
  $("viewer-close").addEventListener("click", function () { closeViewer(); });
  $("viewer-prev").addEventListener("click", function () { step(-1); });
  $("viewer-next").addEventListener("click", function () { step(1); });
  viewer.addEventListener("keydown", function (event) {
    if (event.target.tagName === "INPUT") return;
    if (event.key === "ArrowLeft") step(-1);
    else if (event.key === "ArrowRight") step(1);
  });
  viewer.addEventListener("click", function (event) {
    if (event.target === viewer) closeViewer(); // the backdrop
  });
  var touchX = null;
  frame.addEventListener("touchstart", function (e) { touchX = e.touches[0].clientX; }, { passive: true });
  frame.addEventListener("touchend", function (e) {
    if (touchX === null) return;
    var dx = e.changedTouches[0].clientX - touchX;
    touchX = null;
    if (Math.abs(dx) > 50) step(dx < 0 ? 1 : -1);
  });

  $("viewer-share").addEventListener("click", function () {
    var link = photoLink(current.photo_id);
    if (navigator.share) {
      navigator.share({ title: document.title, url: link }).catch(function () {});
      return;
    }
    var copied = navigator.clipboard ? navigator.clipboard.writeText(link) : Promise.reject();
    copied.then(function () { note.textContent = "Link copied."; }, function () {
      $("viewer-link").select();
      note.textContent = "Copy the link above.";
    });
  });

  // Save under the photo's file name: the photo is on another origin, where `download` alone is
  // ignored; fetch it when its origin allows, else open it for the browser to save.
  $("viewer-download").addEventListener("click", function (event) {
    event.preventDefault();
    var photo = current;
    note.textContent = "Downloading…";
    fetch(photo.url).then(function (res) {
      if (!res.ok) throw new Error(res.status);
      return res.blob();
    }).then(function (blob) {
      var a = el("a");
      a.href = URL.createObjectURL(blob);
      a.download = photo.original_filename || photo.photo_id + ".jpg";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
      note.textContent = "";
    }).catch(function () {
      note.textContent = "";
      window.open(photo.url, "_blank", "noopener");
    });
  });

  // --- start ---------------------------------------------------------------------------------

  if (app.dataset.faces === "on") selfieState();
  else noSelfie();
  call("").then(function (event) {
    $("photo-count").textContent = count(event.photo_count);
    if (!event.faces_available) noSelfie();
  }, function () {});
  fromAddress();
})();
