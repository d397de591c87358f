"""The built book read in headless Chromium as a reader reads it: every page, and the checker
itself on a page made to fail (``tests/book_reader.py``)."""

from __future__ import annotations

import functools
import http.server
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import book_reader
from test_book import CHROMIUM, REPO, book_study, built_book  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _read(site: Path, tmp: Path) -> dict[str, list[str]]:
    """Serve ``site`` on localhost, run the checker over every page, return its findings."""
    pages = book_reader.book_pages(site)
    name = book_reader.write_checker(site, pages)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = book_reader.read_book(CHROMIUM, f"http://127.0.0.1:{server.server_port}/{name}", tmp / "profile")
    finally:
        server.shutdown()
        (site / name).unlink(missing_ok=True)
    results = book_reader.read_results(proc.stdout)
    assert results is not None, f"the checker did not finish: {proc.stderr[-2000:]}"
    assert sorted(results) == pages
    return results


def test_the_reader_finds_each_problem_on_a_page_made_to_fail(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    from PIL import Image

    Image.new("L", (40, 30), 128).save(site / "fig.png")
    wide = "".join(f"<td>column {i} with a long value</td>" for i in range(40))
    (site / "bad.html").write_text(f"""<html><body><article style="width:800px">
<p>Prose may say NaN.</p>
<table><tr><th>mre</th></tr><tr><td>NaN</td></tr></table>
<table><tr>{wide}</tr></table>
<img src="fig.png" alt="fig.png"><img src="fig.png">
<a href="missing.html">gone</a> <a href="#nowhere">anchor</a> <a href="good.html">ok</a>
</article></body></html>""")
    (site / "good.html").write_text("""<html><body><article style="width:800px">
<p>Nothing is NaN in prose.</p><table><tr><td>1.23</td></tr></table>
<div style="overflow-x:auto"><table><tr>""" + wide + """</tr></table></div>
<img src="fig.png" alt="Test MRE per chain, two seeds each"><a href="bad.html">back</a>
</article></body></html>""")
    found = _read(site, tmp_path)
    assert found["good.html"] == []
    bad = " | ".join(found["bad.html"])
    assert "shows NaN" in bad and "Prose" not in bad
    assert "table 2" in bad and "does not scroll" in bad and "table 1 " not in bad
    assert bad.count("no alt text") == 2
    assert "broken link: /missing.html" in bad and "broken anchor: #nowhere" in bad
    assert book_reader.absolute_paths(site, [str(tmp_path)]) == {}
    (site / "leak.html").write_text(f"<html><body>written in {tmp_path}/results</body></html>")
    assert book_reader.absolute_paths(site, [str(tmp_path)]) == {"leak.html": [str(tmp_path)]}


@pytest.mark.slow
def test_every_page_of_the_book_reads_cleanly(built_book: Path, book_study: Path, tmp_path):  # noqa: F811
    """No NaN shown, no table overflowing its column without its own scroll box, alt text on
    every figure, no broken local link or anchor, no absolute path of the machine that built it."""
    found = {page: problems for page, problems in _read(built_book, tmp_path).items() if problems}
    assert not found, "\n".join(f"{page}: {p}" for page, problems in found.items() for p in problems[:5])
    build_paths = [str(REPO), str(book_study.parent.parent), str(Path.home()) + "/"]
    assert book_reader.absolute_paths(built_book, build_paths) == {}
