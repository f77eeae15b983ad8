"""Render the built docs in headless Chromium: screenshots of the index, a measures page and
the results page, and no console errors on any of them.

    python tools/docs_check.py [SITE_DIR]       (after ``mkdocs build``; ``make docs-check``)

The site is served over HTTP from a local port (the search index is fetched, which a
``file://`` page cannot do). Chromium is driven through Playwright when it is installed
(``pip install playwright && playwright install chromium``), else through a ``chromium``,
``chromium-browser`` or ``google-chrome`` binary on PATH (``--headless --screenshot``, its
console read from ``--enable-logging=stderr``). Screenshots go to ``SITE_DIR/_check/``.
Without Chromium the check is skipped with a message saying so (exit code 0), so CI on a
machine without it passes and says what it did not check.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

PAGES = {"index": "index.html", "measures": "measures.html", "results": "results.html"}
BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _serve(site: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _with_playwright(base: str, out: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch()
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        for name, path in PAGES.items():
            page.goto(f"{base}/{path}", wait_until="networkidle")
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        browser.close()
    return errors


def _with_binary(binary: str, base: str, out: Path) -> list[str]:
    errors: list[str] = []
    for name, path in PAGES.items():
        with tempfile.TemporaryDirectory() as profile:
            run = subprocess.run(
                [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                 "--window-size=1280,1600", "--virtual-time-budget=5000",
                 f"--screenshot={out / f'{name}.png'}", f"{base}/{path}"],
                capture_output=True, text=True, timeout=120)
        for line in run.stderr.splitlines():
            if "CONSOLE" in line and ("Error" in line or "Uncaught" in line):
                errors.append(f"{path}: {line.strip()}")
        if not (out / f"{name}.png").exists():
            errors.append(f"{path}: no screenshot (exit {run.returncode}): {run.stderr[-500:]}")
    return errors


def _playwright_chromium() -> bool:
    """Playwright is installed and so is its Chromium (``playwright install chromium``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return False
    with sync_playwright() as p:
        return Path(p.chromium.executable_path).exists()


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else "site").resolve()
    missing = [p for p in PAGES.values() if not (site / p).exists()]
    if missing:
        print(f"docs-check: {site} lacks {', '.join(missing)}; run `make docs` first")
        return 2
    driver = "playwright" if _playwright_chromium() else next(
        (b for b in BINARIES if shutil.which(b)), None)
    if driver is None:
        print("docs-check: SKIPPED, no headless Chromium here (neither Playwright's Chromium nor a "
              f"{'/'.join(BINARIES)} binary); the pages were built but not rendered")
        return 0
    out = site / "_check"
    out.mkdir(exist_ok=True)
    server, base = _serve(site)
    try:
        if driver == "playwright":
            errors = _with_playwright(base, out)
        else:
            errors = _with_binary(shutil.which(driver), base, out)
    finally:
        server.shutdown()
    for e in errors:
        print(f"console error: {e}")
    print(f"docs-check ({driver}): {len(PAGES)} pages, screenshots in {out}, "
          f"{len(errors)} console errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
