"""Reading a built book as a reader does, in headless Chromium: every page, one browser start.

A checker page, written next to the book's pages and served with them (same origin), loads each
page in turn into an iframe as wide as a laptop window, waits for it to lay out, and records
what a reader would trip over:

- ``NaN``, ``nan`` or ``None`` shown as a value (table cells, cell outputs, captions);
- a table wider than the article column whose own box does not scroll sideways;
- an image without alt text that says what it shows (empty, a file name or a path);
- a local link or image whose target does not exist (``#fragment`` included).

The results are written into the checker page's DOM, which ``chromium --dump-dom`` prints.
Absolute paths of the build machine are found in the HTML text (Python side). Used by
``tests/test_book_reader.py``; standard library only.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

CHECKER_NAME = "_xlm_reader_check.html"
RESULT_ID = "xlm-reader-results"

_CHECKER = """<!doctype html>
<html><head><meta charset="utf-8"><title>reader check</title></head>
<body>
<iframe id="frame" style="width:1280px;height:900px;border:0"></iframe>
<pre id="%(result_id)s"></pre>
<script>
const PAGES = %(pages)s;
const results = {};
const frame = document.getElementById("frame");

function shownValues(doc) {
  // what the notebooks computed: table cells, cell outputs, captions (not the prose, which
  // may talk about NaN, nor code)
  const parts = [];
  doc.querySelectorAll("td, th, .cell_output, figcaption, caption").forEach(e => {
    const clone = e.cloneNode(true);
    clone.querySelectorAll("pre.highlight, code, script, style").forEach(x => x.remove());
    parts.push(clone.textContent || "");
  });
  return parts.join(" | ");
}

function scrollsSideways(el, stop) {
  for (let e = el.parentElement; e && e !== stop; e = e.parentElement) {
    const x = frame.contentWindow.getComputedStyle(e).overflowX;
    if ((x === "auto" || x === "scroll") && e.clientWidth < e.scrollWidth + 1) return true;
  }
  return false;
}

async function exists(url) {
  try {
    const r = await fetch(url, {method: "GET", cache: "no-store"});
    return r.ok;
  } catch (e) { return false; }
}

async function check(page) {
  const doc = frame.contentDocument;
  const problems = [];
  const text = shownValues(doc);
  const bad = text.match(/(^|[^A-Za-z_])(NaN|nan|None)(?![A-Za-z_])/);
  if (bad) {
    const at = text.indexOf(bad[0]);
    problems.push("shows " + bad[2] + ": ..." + text.slice(Math.max(0, at - 60), at + 40).replace(/\\s+/g, " ") + "...");
  }
  const article = doc.querySelector("article") || doc.querySelector("main") || doc.body;
  const width = article.getBoundingClientRect().width;
  doc.querySelectorAll("table").forEach((t, i) => {
    const w = t.getBoundingClientRect().width;
    if (w > width + 2 && !scrollsSideways(t, doc.body)) {
      const head = (t.querySelector("th") || t).textContent.trim().slice(0, 30);
      problems.push("table " + (i + 1) + " ('" + head + "') is " + Math.round(w) + " px wide in a " + Math.round(width) + " px column and does not scroll");
    }
  });
  doc.querySelectorAll("img").forEach(img => {
    // the theme's toolbar icons (launch buttons) stand beside their text label: not figures
    if (img.closest(".bd-header-article")) return;
    const alt = (img.getAttribute("alt") || "").trim();
    const src = img.getAttribute("src") || "";
    if (alt.length < 12 || /[\\/\\\\]/.test(alt) || /\\.(png|jpe?g|svg|gif)$/i.test(alt) || alt === src) {
      problems.push("image " + src.split("/").pop() + " has no alt text saying what it shows (alt: '" + alt + "')");
    }
  });
  const seen = new Set();
  const targets = [];
  doc.querySelectorAll("a[href], img[src]").forEach(e => {
    const raw = e.getAttribute("href") || e.getAttribute("src");
    if (!raw || /^(https?:|mailto:|data:|javascript:)/i.test(raw)) return;
    const url = new URL(raw, frame.contentWindow.location.href);
    if (url.origin !== location.origin || seen.has(url.href)) return;
    seen.add(url.href);
    targets.push(url);
  });
  for (const url of targets) {
    const file = url.href.split("#")[0];
    if (!(await exists(file))) { problems.push("broken link: " + url.pathname); continue; }
    if (url.hash && url.hash.length > 1 && file === frame.contentWindow.location.href.split("#")[0]) {
      const id = decodeURIComponent(url.hash.slice(1));
      if (!doc.getElementById(id) && !doc.getElementsByName(id).length) problems.push("broken anchor: " + url.hash);
    }
  }
  results[page] = problems;
}

async function run() {
  for (const page of PAGES) {
    await new Promise(resolve => { frame.onload = resolve; frame.src = page; });
    await new Promise(resolve => setTimeout(resolve, 50));
    try { await check(page); } catch (e) { results[page] = ["checker error: " + e]; }
  }
  document.getElementById("%(result_id)s").textContent = JSON.stringify(results);
}
run();
</script>
</body></html>
"""


def book_pages(html_root: Path) -> list[str]:
    """Every content page of a built book, relative to ``html_root`` (no search or index pages)."""
    skip = {"search.html", "genindex.html", CHECKER_NAME}
    return sorted(
        p.relative_to(html_root).as_posix()
        for p in html_root.rglob("*.html")
        if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts
    )


def write_checker(html_root: Path, pages: list[str]) -> str:
    """Write the checker page into ``html_root``; returns its name (to open over HTTP)."""
    (html_root / CHECKER_NAME).write_text(_CHECKER % {"pages": json.dumps(pages), "result_id": RESULT_ID})
    return CHECKER_NAME


def read_results(dom: str) -> dict[str, list[str]] | None:
    """The checker's results from ``chromium --dump-dom`` output, or None when it did not finish."""
    match = re.search(rf'<pre id="{RESULT_ID}">(.*?)</pre>', dom, re.DOTALL)
    if not match or not match.group(1).strip():
        return None
    import html

    return json.loads(html.unescape(match.group(1)))


def absolute_paths(html_root: Path, forbidden: list[str]) -> dict[str, list[str]]:
    """Pages whose HTML contains one of the ``forbidden`` path prefixes (the build machine's)."""
    found: dict[str, list[str]] = {}
    for page in book_pages(html_root):
        text = (html_root / page).read_text(errors="replace")
        hits = sorted({f for f in forbidden if f and f in text})
        if hits:
            found[page] = hits
    return found


def read_book(chromium: str, url: str, profile_dir: Path, budget_ms: int = 240_000) -> subprocess.CompletedProcess:
    """Open the checker page at ``url`` and dump its DOM once the checks have run."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile_dir}", "--window-size=1300,1000",
           f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
