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
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

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
    a.add_argument("--attacker", required=True)
    a.add_argument("--finding-fix", required=True)
    return a.parse_args()


# Every element that is wider than its box (clipped or scrolled), reaches
# past the window, or is a chart label overlapping another.
OVERFLOW_JS = """
const out = [];
const vw = document.documentElement.clientWidth;
const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
  (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
for (const e of document.querySelectorAll('body *')) {
  if (e.closest('.vh, .skip, [hidden]')) continue;
  const head = e.closest('thead');
  if (head && head.getBoundingClientRect().width <= 1) continue;  // the stacked tables' hidden header
  const inSvg = e.ownerSVGElement !== undefined && e.tagName.toLowerCase() !== 'svg';
  const cs = getComputedStyle(e);
  if (cs.display === 'none' || cs.visibility === 'hidden') continue;
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (r.right > vw + 1 || r.left < -1) out.push(name(e) + ' reaches past the window (' + Math.round(r.left) + '..' + Math.round(r.right) + ')');
  if (!inSvg && cs.display !== 'inline' && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
    out.push(name(e) + ' is ' + e.scrollWidth + ' px wide in ' + e.clientWidth + ' px: ' + (e.textContent || '').trim().slice(0, 60));
}
for (const s of document.querySelectorAll('svg')) {
  const t = [...s.querySelectorAll('text')].map((x) => [x.textContent, x.getBoundingClientRect()]);
  for (let i = 0; i < t.length; i++)
    for (let j = i + 1; j < t.length; j++) {
      const a = t[i][1], b = t[j][1];
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
        out.push(s.id + ': labels "' + t[i][0] + '" and "' + t[j][0] + '" overlap');
    }
}
return out;
"""


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

    def click(css):
        # Tables are redrawn on every refresh: an element found just before
        # one may be gone when clicked.
        for _ in range(10):
            try:
                d.find_element(By.CSS_SELECTOR, css).click()
                return
            except StaleElementReferenceException:
                time.sleep(0.2)
        raise AssertionError(f"{css} kept going stale")

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

        step("the banner: breaker OPEN in red, why once, the fix and the exact commands")
        banner = d.find_element(By.ID, "banner")
        assert "bad" in banner.get_attribute("class").split(), banner.get_attribute("class")
        assert d.find_element(By.ID, "banner-state").text == "Breaker OPEN"
        assert d.find_element(By.ID, "banner-headline").text == "All traffic to the agent is blocked."
        assert d.title.startswith("OPEN"), d.title
        text = banner.text
        assert text.count("EXPOSURE_PUBLIC_BIND") == 1, text
        assert "NGINX_LISTEN_PUBLIC: nginx listens on 0.0.0.0:8080" in text, text
        assert d.find_element(By.ID, "banner-first").text == f"Fix what the guardian found: {args.finding_fix}"
        prefix = f"moltguard --home {args.home}"
        cmds = [c.text for c in d.find_elements(By.CSS_SELECTOR, "#banner-steps code.cmd")]
        assert cmds == [f"{prefix} audit", f"{prefix} breaker close --for 30m"], cmds
        red = js("return getComputedStyle(document.getElementById('banner')).backgroundColor")
        rgb = [int(x) for x in re.findall(r"\d+", red)[:3]]
        assert rgb[0] > 150 and rgb[1] < 80 and rgb[2] < 80, f"the OPEN banner is not red: {red}"

        step("copy the close command: it lands on the clipboard as shown")
        d.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )
        click("#banner-steps li:nth-child(2) button.copy")
        wait.until(lambda _: "Copied: " in d.find_element(By.ID, "announce").text)
        pasted = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, (e) => done('cannot read: ' + e));"
        )
        assert pasted == f"{prefix} breaker close --for 30m", pasted

        step("the state: lockdown off, the ban listed, breaker, guardian, providers, charts")
        assert not pressed("lockdown") and not pressed("emergency")
        wait.until(lambda _: args.banned in blocked_rows())
        # Read in one go, like every list the refresh redraws.
        hist = [" ".join(t.split()) for t in js("return [...document.querySelectorAll('#breaker-history li')].map(li => li.innerText)")]
        assert len(hist) == 3, hist
        assert "closed → open by guardian applied EXPOSURE_PUBLIC_BIND" in hist[0], hist[0]
        assert "open → closed by user" in hist[1], hist[1]
        findings = d.find_element(By.ID, "findings").text
        assert "PERMISSIONS_STATE_DIR" in findings and "Fix: chmod 700" in findings, findings
        prov = d.find_element(By.CSS_SELECTOR, "#providers tbody").text
        assert "ollama" in prov and "closed" in prov, prov
        assert re.search(r"\d+ / \d+ / \d+ ms \(\d+\)", prov), f"no percentiles: {prov}"
        lines = d.find_elements(By.CSS_SELECTOR, "#latency-svg path.line")
        assert len(lines) == 2, f"p50 and p95 lines for one provider, got {len(lines)}"
        assert len(js("return document.querySelector('#latency-svg path.line').getAttribute('d')")) > 100

        def bars(chart, series=None):
            sel = f"#{chart}-svg rect.bar" + (f'[data-series="{series}"]' if series else "")
            return js("return [...document.querySelectorAll(arguments[0])].map(r => r.getAttribute('data-series'))", sel)

        # An hour of minutes: the seeded traffic fills nearly every one.
        assert len(bars("chart-requests", "answered")) >= 55, bars("chart-requests")
        assert bars("chart-requests", "failed"), "the seeded minutes with errors"
        assert len(bars("chart-blocks", "firewall")) >= 15, bars("chart-blocks")
        assert bars("chart-blocks", "bad API keys"), bars("chart-blocks")
        assert bars("chart-bans", "automatic bans") and bars("chart-bans", "bans by hand"), bars("chart-bans")
        assert len(bars("chart-tokens", "ollama")) >= 55, bars("chart-tokens")
        legend = js("return document.querySelector('#chart-tokens .legend').innerText")
        assert re.search(r"ollama [\d.]+k \([\d.]+k in, [\d.]+k out\)", legend), legend
        desc = js("return document.getElementById('chart-blocks-svg-desc').textContent")
        assert desc.startswith("firewall: 19"), desc
        conns = d.find_element(By.ID, "conn-count").text
        assert "open of" in conns, conns
        assert d.find_elements(By.CSS_SELECTOR, "#connections tbody tr td code"), "connection rows"
        incidents = d.find_element(By.CSS_SELECTOR, "#incidents tbody").text
        assert "manual_block" in incidents and "login_failure" in incidents, incidents

        def incident_rows():
            return js(
                "return [...document.querySelectorAll('#incidents tbody tr[data-kind]')]"
                ".map(r => [r.dataset.kind, r.querySelector('button.link-button') ? r.querySelector('button.link-button').dataset.ip : '', Number(r.dataset.ts)])"
            )

        step("incident filters: kind, then one address (clicked), then time")
        Select(d.find_element(By.ID, "f-kind")).select_by_value("firewall_block")
        d.find_element(By.CSS_SELECTOR, "#incident-filter button[type=submit]").click()
        wait.until(lambda _: (lambda r: len(r) == 19 and all(k == "firewall_block" for k, _, _ in r))(incident_rows()))
        assert "19 incidents (kind firewall_block)" in d.find_element(By.ID, "incidents-meta").text
        d.find_element(By.ID, "f-clear").click()
        wait.until(lambda _: any(k == "login_failure" for k, _, _ in incident_rows()))
        click(f'#incidents button.link-button[data-ip="{args.attacker}"]')
        wait.until(lambda _: (lambda r: len(r) == 20 and all(ip == args.attacker for _, ip, _ in r))(incident_rows()))
        assert d.find_element(By.ID, "f-ip").get_attribute("value") == args.attacker
        Select(d.find_element(By.ID, "f-since")).select_by_value("900000")
        d.find_element(By.CSS_SELECTOR, "#incident-filter button[type=submit]").click()
        wait.until(lambda _: 4 <= len(incident_rows()) < 20)
        cutoff = time.time() * 1000 - 900_000 - 60_000
        assert all(ip == args.attacker and ts >= cutoff for _, ip, ts in incident_rows()), incident_rows()
        d.find_element(By.ID, "f-clear").click()
        wait.until(lambda _: any(k == "login_failure" for k, _, _ in incident_rows()))
        assert d.find_element(By.ID, "f-ip").get_attribute("value") == ""

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
            # The charts redraw at the new width (150 ms after the resize).
            time.sleep(0.6)

        def no_overflow(label):
            found = js(OVERFLOW_JS)
            assert not found, f"{label}: {len(found)} overflowing: {found[:15]}"

        for (width, height, shot) in [(1280, 800, args.screenshot), (390, 844, args.narrow_screenshot)]:
            step(f"{width}x{height}: nothing overflows or overlaps; the banner is the first thing seen")
            viewport(width, height)
            js("window.scrollTo(0, 0)")
            no_overflow(f"{width}x{height}")
            top = js("const r = document.getElementById('banner-steps').getBoundingClientRect(); return [r.top, r.bottom]")
            assert 0 < top[0] and top[1] <= height, f"the banner's commands are not in the first screen: {top}"
            d.save_screenshot(shot)
            # The whole page too, for a person to look at.
            full = js("return document.documentElement.scrollHeight")
            viewport(width, min(full, 8000))
            d.save_screenshot(shot.replace(".png", "-full.png"))
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
