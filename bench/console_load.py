#!/usr/bin/env python3
"""The web console in Chromium over a large mesh-wide quarantine.

  python3 bench/console_load.py --bin DIR [--entries 1000000] [--nodes 3] [--loads 20] [--queries 200]

Starts N real nodes (127.0.0.1..N), quarantines ENTRIES mxload messages spread over them
(as bench/quarantine_search.py), waits until node 1's index holds them all, then drives
headless Debian Chromium (Selenium) against node 1's console:

- page load, LOADS times: the browser's own Navigation Timing for /ui/#/quarantine —
  first byte (responseStart) and full load (loadEventEnd) — and the time until the first
  page of quarantine results is on screen (the table rendered from the API's answer);
- search, QUERIES times: a subject filter typed in the form and submitted, timed in the
  page from the click to the results table being replaced (fetch + JSON + DOM), p50/p99.
"""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mesh_figures import TOKEN, api, make_mesh, pct, wait_all_live  # noqa: E402
from quarantine_search import metric  # noqa: E402

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

# Times, in ms, read in the page: from the search click to the new results in the DOM.
SEARCH_JS = """
const done = arguments[arguments.length - 1];
const subject = arguments[0];
const main = document.getElementById('main');
document.getElementById('q-results').replaceChildren();
const t0 = performance.now();
const obs = new MutationObserver(() => {
  if (document.getElementById('q-table') || document.getElementById('q-empty')) {
    obs.disconnect();
    done(performance.now() - t0);
  }
});
obs.observe(main, { childList: true, subtree: true });
document.getElementById('q-subject').value = subject;
document.getElementById('q-search').click();
"""


def fill(nodes, entries, size):
    rule = {"name": "hold load", "priority": 1, "action": "quarantine", "reason": "bench",
            "when": {"field": "from", "op": "equals", "value": "load@mxload.test"}}
    assert api(nodes[0].admin, "POST", "/api/v1/rules", rule)[0] == 201
    time.sleep(2)
    mxload = os.path.join(os.path.dirname(nodes[0].binary), "mxload")
    per_node = entries // len(nodes)
    t0 = time.time()
    procs = [subprocess.Popen([mxload, "--to", n.smtp, "--sessions", "10", "--messages", str(per_node),
                               "--size", str(size), "--json"], stdout=subprocess.PIPE) for n in nodes]
    accepted = sum(json.loads(p.communicate()[0])["accepted"] for p in procs)
    print(f"sent {accepted} messages in {time.time() - t0:.0f} s", flush=True)
    while metric(nodes[0], "mxmesh_quarantine_index_entries") < accepted:
        time.sleep(1)
    print(f"mx1 index holds {metric(nodes[0], 'mxmesh_quarantine_index_entries')} entries", flush=True)
    return per_node


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--size", type=int, default=600)
    p.add_argument("--loads", type=int, default=20)
    p.add_argument("--queries", type=int, default=200)
    a = p.parse_args()
    nodes, _ = make_mesh(os.path.join(a.bin, "mxmesh"), a.nodes, "mxmesh-console-")
    driver = None
    try:
        for n in nodes:
            n.start()
        wait_all_live(nodes)
        per_node = fill(nodes, a.entries, a.size)
        driver = browser()
        base = f"http://{nodes[0].admin}/ui/"
        driver.get(base)
        WebDriverWait(driver, 30).until(EC.visibility_of_element_located((By.ID, "token"))).send_keys(TOKEN)
        driver.find_element(By.ID, "signin-submit").click()
        WebDriverWait(driver, 30).until(EC.visibility_of_element_located((By.ID, "nav")))
        ttfb, load, results = [], [], []
        for _ in range(a.loads):
            driver.get("about:blank")
            driver.get(base + "#/quarantine")
            WebDriverWait(driver, 60, poll_frequency=0.05).until(EC.presence_of_element_located((By.ID, "q-table")))
            nav = driver.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
            mark = driver.execute_script("return performance.getEntriesByName('mxmesh:quarantine-results')[0].startTime")
            results.append(mark / 1000)
            ttfb.append(nav["responseStart"] / 1000)
            load.append(nav["loadEventEnd"] / 1000)
        print(f"console page load ({a.loads}x): first byte p50 {1000 * pct(ttfb, 50):.1f} ms p99 {1000 * pct(ttfb, 99):.1f} ms; "
              f"full load p50 {1000 * pct(load, 50):.1f} ms p99 {1000 * pct(load, 99):.1f} ms; "
              f"first results on screen p50 {1000 * pct(results, 50):.1f} ms p99 {1000 * pct(results, 99):.1f} ms", flush=True)
        searches = []
        for k in range(a.queries):
            subject = f"message {k * 7919 % per_node}"
            ms = driver.execute_async_script(SEARCH_JS, subject)
            searches.append(ms / 1000)
        print(f"console search ({a.queries}x, subject filter, click to results in the DOM): "
              f"p50 {1000 * pct(searches, 50):.1f} ms p99 {1000 * pct(searches, 99):.1f} ms max {1000 * max(searches):.1f} ms", flush=True)
    finally:
        if driver:
            driver.quit()
        for n in nodes:
            n.stop()


if __name__ == "__main__":
    main()
