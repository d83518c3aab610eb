"""A screenshot of a leaderboard page (`ponder leaderboard report` writes it) in headless Chromium,
the system's (Debian's `chromium`), driven by Playwright: the table and the plot, and with
--row the drill-down of that row opened below them.

    python benchmarks/leaderboard_page.py benchmarks/results/leaderboard/gsm8k-qwen05/index.html \
        benchmarks/results/leaderboard/gsm8k-qwen05/screenshot.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main():
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("page", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=1500)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(args.page.resolve().as_uri())
        page.wait_for_selector("#board tbody tr")
        page.wait_for_function("document.querySelector('img.plot').complete")
        page.screenshot(path=str(args.png), full_page=True)
        browser.close()
    print(f"{args.png}: {page.viewport_size}, console errors: {len(errors)}")


if __name__ == "__main__":
    main()
