"""Take the screenshots in docs/images/ of the dashboard's main pages.

    .venv/bin/python docs/screenshots.py

Starts `botkit run` with the example bots on a fresh database in a temporary folder,
texts it from a few simulated handsets, then photographs each page in headless
Chromium (Debian's, as the tests use) at laptop and phone widths.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
BOTKIT = str(Path(sys.executable).parent / "botkit")
CONVERSATIONS = {
    "+61412345678": ["hello", "Grace <b>Hopper</b>"],
    "+61498765432": ["JOIN", "YES"],
    "+6421555123": ["SURVEY", "4", "The friendly staff", "yes"],
    "+61400111222": ["SURVEY", "2", "Waited 40 minutes", "no"],
    "+61400333444": ["SURVEY", "5", "Quick and easy", "yes"],
    "+61400555666": ["hello", "STOP"],
}


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "BOTKIT_SEND_RATE": "50"}
        app = subprocess.Popen(
            [BOTKIT, "run", "--port", str(port), "--db", f"{folder}/botkit.db"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait(f"{base}/healthz")
            _converse(base)
            _photograph(base)
        finally:
            app.terminate()
            app.wait(10)


def _wait(url: str) -> None:
    for _ in range(100):
        try:
            httpx.get(url)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def _converse(base: str) -> None:
    """Each handset texts its lines, one at a time, waiting for the bot's answer."""
    for number, lines in CONVERSATIONS.items():
        for text in lines:
            httpx.post(f"{base}/simulator/api/handsets/{number}/send", json={"text": text})
            time.sleep(0.6)
    time.sleep(3)  # the simulated carrier's delivery receipts


def _photograph(base: str) -> None:
    shots = {
        "conversations": "/dashboard/",
        "transcript": None,  # the first conversation, found on the page
        "surveys": "/dashboard/surveys/satisfaction",
        "deliveries": "/dashboard/deliveries",
        "consent": "/dashboard/consent",
    }
    args = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        for width, height, suffix in ((1280, 860, ""), (390, 844, "-phone")):
            page = browser.new_page(viewport={"width": width, "height": height})
            for name, path in shots.items():
                if path is None:
                    page.goto(f"{base}/dashboard/?q=%2B61412345678")
                    page.click("table.conversations a")
                else:
                    page.goto(base + path)
                page.screenshot(path=IMAGES / f"{name}{suffix}.png", full_page=True)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
