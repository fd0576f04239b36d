"""Screenshots of pages at desktop and phone width, for looking at what we ship.

    python tools/screenshots.py --base http://127.0.0.1:5000 --user sec1 / /bookings
Writes PNGs under screenshots/ (ignored by git).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:5000")
    parser.add_argument("--user")
    parser.add_argument("--password", default="partyday")
    parser.add_argument("--lang", default="zh_CN")
    parser.add_argument("--out", default="screenshots")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for size_name, (width, height) in SIZES.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            if args.user:
                page.goto(args.base + "/login")
                page.fill("#username", args.user)
                page.fill("#password", args.password)
                page.click("main form button[type=submit]")
                page.wait_for_load_state("networkidle")
            if args.lang != "zh_CN":
                page.locator(f"button[name=lang][value={args.lang}]").click()
            for path in args.paths:
                page.goto(args.base + path)
                page.wait_for_load_state("networkidle")
                name = re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_") or "home"
                file = out / f"{args.user or 'anon'}_{name}_{size_name}.png"
                page.screenshot(path=str(file), full_page=True)
                print(file)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
