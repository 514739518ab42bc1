"""Drives moltgate's /dashboard in a real headless Chromium (Debian's
chromium and chromedriver; no Selenium Manager, no downloads).

Run by tests/dashboard.rs against a moltgate it started, with the
`moltguard` binary and home to check each change from the command line.
Prints "ALL OK" at the end; any failed check raises.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from urllib.parse import urlparse

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def parse_args():
    a = argparse.ArgumentParser()
    a.add_argument("--base", required=True)
    a.add_argument("--password", required=True)
    a.add_argument("--banned", required=True)
    a.add_argument("--moltguard", required=True)
    a.add_argument("--home", required=True)
    a.add_argument("--profile", required=True)
    a.add_argument("--screenshot", required=True)
    a.add_argument("--narrow-screenshot", required=True)
    a.add_argument("--admin-key", required=True)
    a.add_argument("--read-key", required=True)
    return a.parse_args()


def step(msg):
    print(f"-- {msg}", flush=True)


class Check:
    def __init__(self, args):
        self.args = args

    def cli(self, *argv):
        out = subprocess.run(
            [self.args.moltguard, "--home", self.args.home, "--json", *argv],
            capture_output=True,
            text=True,
            env={},
            timeout=30,
        )
        assert out.returncode == 0, f"moltguard {argv}: {out.stdout} {out.stderr}"
        return json.loads(out.stdout)

    def blocked(self):
        return [b["target"] for b in self.cli("blocked", "list")["blocked"]]


def browser(args):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1280,900",
        f"--user-data-dir={args.profile}",
    ]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def main():
    args = parse_args()
    check = Check(args)
    base = args.base.rstrip("/")
    host = urlparse(base).netloc
    d = browser(args)
    wait = WebDriverWait(d, 15, poll_frequency=0.1)
    js = d.execute_script

    def shown(css):
        return wait.until(lambda _: (lambda e: e if e.is_displayed() else False)(d.find_element(By.CSS_SELECTOR, css)))

    def pressed(name):
        return d.find_element(By.ID, name).get_attribute("aria-pressed") == "true"

    def blocked_rows():
        # Read in one go: the table is redrawn on every refresh.
        return js("return [...document.querySelectorAll('#blocked tbody tr[data-target]')].map(r => r.dataset.target)")

    def live_and_fresh(after_ms):
        return js("const m = window.moltgateDashboard; return !!m && m.live && m.updated > arguments[0];", after_ms)

    try:
        step("open /dashboard: the login form")
        d.get(base + "/dashboard")
        pw = shown("#password")
        assert not d.find_element(By.ID, "app").is_displayed(), "data shown before login"
        assert d.title == "moltgate dashboard", d.title

        step("wrong password: an error, still the login form")
        pw.send_keys("not the password")
        d.find_element(By.ID, "login-submit").click()
        wait.until(lambda _: "wrong password" in d.find_element(By.ID, "login-error").text)
        assert not d.find_element(By.ID, "app").is_displayed()

        step("log in with the gateway password")
        pw = d.find_element(By.ID, "password")
        pw.clear()
        pw.send_keys(args.password)
        d.find_element(By.ID, "login-submit").click()
        shown("#app")
        wait.until(lambda _: live_and_fresh(0))
        assert "Live" in d.find_element(By.ID, "link").text, d.find_element(By.ID, "link").text

        step("the state: lockdown off, the ban listed, breaker, guardian, providers, chart")
        assert not pressed("lockdown") and not pressed("emergency")
        wait.until(lambda _: args.banned in blocked_rows())
        assert d.find_element(By.ID, "breaker-state").text == "CLOSED"
        assert "MANUAL" in d.find_element(By.ID, "breaker").text
        hist = d.find_elements(By.CSS_SELECTOR, "#breaker-history tbody tr")
        assert len(hist) == 2, [r.text for r in hist]
        assert "open → closed" in hist[0].text, hist[0].text
        findings = d.find_element(By.ID, "findings").text
        assert "PERMISSIONS_STATE_DIR" in findings and "Fix: chmod 700" in findings, findings
        prov = d.find_element(By.CSS_SELECTOR, "#providers tbody").text
        assert "ollama" in prov and "closed" in prov, prov
        assert re.search(r"\d+ / \d+ / \d+ ms \(\d+\)", prov), f"no percentiles: {prov}"
        lines = d.find_elements(By.CSS_SELECTOR, "#latency-svg path.line")
        assert len(lines) == 2, f"p50 and p95 lines for one provider, got {len(lines)}"
        assert len(js("return document.querySelector('#latency-svg path.line').getAttribute('d')")) > 100
        conns = d.find_element(By.ID, "conn-count").text
        assert "open of" in conns, conns
        assert d.find_elements(By.CSS_SELECTOR, "#connections tbody tr td code"), "connection rows"
        incidents = d.find_element(By.CSS_SELECTOR, "#incidents tbody").text
        assert "manual_block" in incidents and "login_failure" in incidents, incidents

        step("toggle lockdown on")
        before = int(time.time() * 1000)
        d.find_element(By.ID, "lockdown").click()
        wait.until(lambda _: pressed("lockdown"))
        assert check.cli("lockdown")["on"] is True, "the CLI does not see lockdown on"
        wait.until(lambda _: "Lockdown is now on" in d.find_element(By.ID, "announce").text)
        # The mode_change incident comes back as a pushed event and a refresh.
        wait.until(lambda _: live_and_fresh(before) and "mode_change" in d.find_element(By.CSS_SELECTOR, "#incidents tbody").text)

        step("reload in lockdown: the session goes straight to the dashboard")
        d.refresh()
        shown("#app")
        wait.until(lambda _: live_and_fresh(0))
        wait.until(lambda _: pressed("lockdown"))

        step(f"unblock {args.banned}")
        # The list re-renders on every refresh: a button found just before
        # one may be gone when clicked.
        for _ in range(5):
            try:
                d.find_element(By.CSS_SELECTOR, f'#blocked button[data-target="{args.banned}"]').click()
                break
            except StaleElementReferenceException:
                time.sleep(0.2)
        wait.until(lambda _: args.banned not in blocked_rows())
        assert args.banned not in check.blocked(), "the CLI still lists the ban"
        wait.until(lambda _: "Unblocked" in d.find_element(By.ID, "announce").text)

        step("block a CIDR block with the form")
        d.find_element(By.ID, "block-target").send_keys("198.51.100.0/24")
        d.find_element(By.ID, "block-reason").send_keys("from the dashboard test")
        d.find_element(By.CSS_SELECTOR, "#block-form button[type=submit]").click()
        wait.until(lambda _: "198.51.100.0/24" in blocked_rows())
        assert "198.51.100.0/24" in check.blocked()
        step("a bad target is refused with the gateway's message")
        d.find_element(By.ID, "block-target").send_keys("not-an-ip")
        d.find_element(By.CSS_SELECTOR, "#block-form button[type=submit]").click()
        wait.until(lambda _: "Cannot block not-an-ip" in d.find_element(By.ID, "announce").text)
        d.find_element(By.ID, "block-target").clear()

        step("kill switch on and off")
        d.find_element(By.ID, "emergency").click()
        wait.until(lambda _: pressed("emergency"))
        assert check.cli("kill-switch")["on"] is True
        d.find_element(By.ID, "emergency").click()
        wait.until(lambda _: not pressed("emergency"))
        assert check.cli("kill-switch")["on"] is False

        step("a change made elsewhere shows within a refresh (CLI lockdown off)")
        check.cli("lockdown", "off")
        WebDriverWait(d, 25, poll_frequency=0.2).until(lambda _: not pressed("lockdown"))
        d.find_element(By.ID, "lockdown").click()
        wait.until(lambda _: pressed("lockdown"))
        assert check.cli("lockdown")["on"] is True

        step("nothing loaded from another origin; no CSP violation")
        names = js(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(e => e.name)"
        )
        assert names, "no resource entries"
        for n in names:
            u = urlparse(n)
            assert u.netloc == host, f"loaded from elsewhere: {n}"
        assert any(n.endswith("/dashboard/assets/app.js") for n in names), names
        logs = d.get_log("browser")
        bad = [e["message"] for e in logs if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
        assert not bad, bad
        errors = [e["message"] for e in logs if e["level"] == "SEVERE" and "401" not in e["message"] and "400" not in e["message"]]
        assert not errors, errors

        def viewport(width, height):
            d.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            time.sleep(0.4)  # the chart redraws at the new width

        def full_page(path, width):
            viewport(width, 900)
            viewport(width, min(js("return document.documentElement.scrollHeight"), 8000))
            js("window.scrollTo(0, 0)")
            d.save_screenshot(path)

        step("narrow screen: no sideways scrolling of the page")
        viewport(390, 844)
        width = js("return [document.documentElement.scrollWidth, window.innerWidth]")
        if width[0] > width[1]:
            wide = js(
                "return [...document.querySelectorAll('body *')]"
                ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
                ".slice(0, 12).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
            )
            raise AssertionError(f"page is {width[0]} px wide in a {width[1]} px window: {wide}")
        full_page(args.narrow_screenshot, 390)

        step("screenshot")
        full_page(args.screenshot, 1280)
        viewport(1280, 900)

        step("log out: the login form again, and the data is gone")
        d.find_element(By.ID, "logout").click()
        shown("#password")
        assert not d.find_element(By.ID, "app").is_displayed()
        assert "Logged out" in d.find_element(By.ID, "login-error").text
        d.refresh()
        shown("#password")

        step("a read-only API key is turned away")
        d.find_element(By.CSS_SELECTOR, "#login details summary").click()
        d.find_element(By.ID, "api-key").send_keys(args.read_key)
        d.find_element(By.CSS_SELECTOR, "#key-form button").click()
        # (In lockdown the gateway itself refuses it: "only administrator keys".)
        wait.until(lambda _: "administrator" in d.find_element(By.ID, "login-error").text)
        assert not d.find_element(By.ID, "app").is_displayed()

        step("an admin API key opens the dashboard, live")
        d.find_element(By.ID, "api-key").send_keys(args.admin_key)
        d.find_element(By.CSS_SELECTOR, "#key-form button").click()
        shown("#app")
        wait.until(lambda _: live_and_fresh(0))
        assert "key " in d.find_element(By.ID, "link").text, d.find_element(By.ID, "link").text
        wait.until(lambda _: "198.51.100.0/24" in blocked_rows())

        print(f"screenshot: {args.screenshot}")
        print(f"narrow screenshot: {args.narrow_screenshot}")
        print("ALL OK")
    except Exception:
        try:
            d.save_screenshot(args.screenshot)
            print(f"screenshot at the failure: {args.screenshot}", file=sys.stderr)
            print(d.find_element(By.TAG_NAME, "body").text[:4000], file=sys.stderr)
            for e in d.get_log("browser"):
                print("browser:", e, file=sys.stderr)
        except Exception as e2:  # the browser itself is gone
            print(f"(no screenshot: {e2})", file=sys.stderr)
        raise
    finally:
        d.quit()


if __name__ == "__main__":
    main()
