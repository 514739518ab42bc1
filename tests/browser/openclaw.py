"""Opens OpenClaw's real Control UI through moltguard's edge in headless
Chromium (Debian's chromium and chromedriver; no downloads), the way a
person does: the edge's password once, then the UI with its own gateway
token in the URL fragment (never sent to a server).

Run by tests/agent.rs inside a network namespace that has only loopback.
Checks that the edge gave a session cookie, that the UI's WebSocket was
authenticated by OpenClaw (its RPCs appear in the gateway's log), and that
no request of the UI was refused by the edge. Prints "ALL OK" at the end.
"""

import argparse
import os
import time

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--edge", required=True, help="host:port of the edge")
    a.add_argument("--user", required=True)
    a.add_argument("--password", required=True)
    a.add_argument("--token", required=True, help="OpenClaw's gateway token")
    a.add_argument("--gateway-log", required=True)
    a.add_argument("--profile", required=True)
    a.add_argument("--screenshot", required=True)
    args = a.parse_args()

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={args.profile}",
        "--window-size=1280,900",
    ]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        print("-- the edge's password, once", flush=True)
        d.get(f"http://{args.user}:{args.password}@{args.edge}/")
        names = [c["name"] for c in d.get_cookies()]
        assert "moltguard_edge" in names, f"no session cookie: {names}"
        cookie = next(c for c in d.get_cookies() if c["name"] == "moltguard_edge")
        assert cookie.get("httpOnly"), cookie

        print("-- the Control UI with its own token", flush=True)
        # Before the token OpenClaw itself refuses the UI's requests (401):
        # let the first page's late requests finish, then drop their log.
        settle_log(d)
        rpcs_before = count_rpcs(args.gateway_log)
        d.get(f"http://{args.edge}/#token={args.token}")
        deadline = time.time() + 60
        while time.time() < deadline and count_rpcs(args.gateway_log) < rpcs_before + 3:
            time.sleep(0.5)
        rpcs = count_rpcs(args.gateway_log) - rpcs_before
        assert rpcs >= 3, f"the UI's WebSocket made {rpcs} RPCs through the edge"
        time.sleep(2)
        d.save_screenshot(args.screenshot)

        print("-- nothing the UI asked for was refused", flush=True)
        refused = [
            e["message"]
            for e in d.get_log("browser")
            if f"//{args.edge}/" in e["message"]
            and any(f"status of {s}" in e["message"] for s in (401, 403, 503))
        ]
        assert not refused, "refused: " + "\n".join(refused)
        body = d.find_element("tag name", "body").text
        assert "Message Assistant" in body or "Connected" in body, body[:800]
        assert "pairing required" not in body.lower(), body[:800]
        print(f"UI made {rpcs} RPCs over its WebSocket", flush=True)
        print("ALL OK", flush=True)
    finally:
        d.quit()


def settle_log(d, quiet=2.0, at_most=15.0):
    """Drains the browser log until it has been quiet for `quiet` seconds."""
    end = time.time() + at_most
    last = time.time()
    while time.time() < end and time.time() - last < quiet:
        if d.get_log("browser"):
            last = time.time()
        time.sleep(0.25)


def count_rpcs(path):
    """Answered RPCs in OpenClaw's gateway log (`⇄ res ✓ method …`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if "res ✓" in line)
    except FileNotFoundError:
        return 0


if __name__ == "__main__":
    main()
