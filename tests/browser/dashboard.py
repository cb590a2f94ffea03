"""The dashboard in a real browser (headless Chromium driven by selenium), while `callvault run`
captures calls that tcpreplay sends: the calls in progress appear with their live quality and
go away when they end; a call is found by its number, opened, and its audio plays with the
duration its record gives, a waveform per channel drawn.

    dashboard.py BASE_URL EXPECT_JSON SCREENSHOT_DIR

EXPECT_JSON: {"calls": N, "number": "...", "id_contains": "_FROM_TO_", "channels": 2}.
Prints one line per step; exits non-zero on the first failure.
"""

import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base, expect_path, shots = sys.argv[1], sys.argv[2], sys.argv[3]
expect = json.load(open(expect_path))
os.makedirs(shots, exist_ok=True)


def step(what):
    print(what, flush=True)


def wait(what, timeout, check):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # an element replaced while reading it: try again
            last = e
        time.sleep(0.1)
    raise SystemExit(f"FAILED: {what} within {timeout} s (last error: {last})")


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
            "--autoplay-policy=no-user-gesture-required", "--mute-audio"]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(base + "/")
    step("page loaded: " + driver.title)
    if driver.title != "callvault":
        raise SystemExit(f"FAILED: title {driver.title!r}")

    # Live: every call in progress appears, with a MOS for each direction once media flows.
    def active_rows():
        rows = driver.find_elements(By.CSS_SELECTOR, "#active tbody tr")
        return rows if len(rows) == expect["calls"] else None

    wait(f"{expect['calls']} calls in progress", 30, active_rows)
    step(f"{expect['calls']} calls in progress shown")

    def with_mos():
        # The texts are read inside the wait: the table is redrawn on every update, so an
        # element kept past this point may be gone.
        cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in active_rows() or []]
        ok = cells and all(c[5] not in ("–", "") and c[9] not in ("–", "") for c in cells)
        return cells if ok else None

    cells = wait("live MOS for both directions of every call", 20, with_mos)
    step("live quality: " + "; ".join(f"{c[0]}->{c[1]} MOS {c[5]}/{c[9]}" for c in cells))
    status = wait("the capture and shipping status", 10,
                  lambda: driver.find_element(By.CSS_SELECTOR, "#status .cards").text)
    step("status: " + status.replace("\n", " | "))
    if "ready" not in status or "packets/s" not in status:
        raise SystemExit(f"FAILED: status panel {status!r}")
    def interface_row():
        rows = driver.find_elements(By.CSS_SELECTOR, "#interfaces tbody tr")
        cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
        return cells if cells and cells[0][0] == expect["interface"] and cells[0][2].endswith(" ago") else None

    cells = wait("the capture interface with its link and last packet", 10, interface_row)
    step("interface: " + " | ".join(cells[0]))
    if cells[0][1] != "up" or int(cells[0][3]) == 0 or int(cells[0][4]) != 0:
        raise SystemExit(f"FAILED: interface row {cells[0]!r}")
    driver.save_screenshot(os.path.join(shots, "live.png"))
    conn = driver.find_element(By.ID, "conn").text
    if conn != "live":
        raise SystemExit(f"FAILED: the live indicator says {conn!r}")

    wait("the calls to end and leave the live view", 60,
         lambda: driver.find_elements(By.ID, "no-active"))
    step("the calls ended and left the live view (no reload)")

    # Search by number, open the call.
    driver.get(base + "/#/search")
    box = wait("the search form", 10, lambda: driver.find_element(By.CSS_SELECTOR, "#search input[name=number]"))
    box.send_keys(expect["number"])
    driver.find_element(By.CSS_SELECTOR, "#search button[type=submit]").click()
    ids = wait("search results", 20,
               lambda: [r.get_attribute("data-id") for r in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")])
    step(f"search {expect['number']!r}: {ids}")
    if len(ids) != 1 or expect["id_contains"] not in ids[0]:
        raise SystemExit(f"FAILED: expected one call named …{expect['id_contains']}…, got {ids}")
    record = json.load(urllib.request.urlopen(base + "/api/v1/calls/" + ids[0]))
    audio_s = record["audio"]["duration_s"]
    driver.save_screenshot(os.path.join(shots, "search.png"))
    wait("the call to open", 10,
         lambda: driver.find_element(By.CSS_SELECTOR, f'#results tbody tr[data-id="{ids[0]}"]').click() or True)

    player = wait("the audio player", 20, lambda: driver.find_element(By.ID, "player"))
    duration = wait("the audio's duration", 20,
                    lambda: driver.execute_script("const a = arguments[0]; return isFinite(a.duration) && a.duration > 0 ? a.duration : null", player))
    step(f"audio element duration {duration:.3f} s, record says {audio_s:.3f} s")
    if abs(duration - audio_s) > 0.002:
        raise SystemExit("FAILED: the audio's duration is not the record's")
    driver.execute_script("arguments[0].play()", player)
    wait("the audio to play", 10, lambda: driver.execute_script("return arguments[0].currentTime", player) > 0.3)
    step("audio plays")
    waves = wait("a waveform per channel", 20,
                 lambda: (lambda c: c if len(c) == expect["channels"] else None)(driver.find_elements(By.CSS_SELECTOR, "#waves canvas")))
    step("waveforms: " + ", ".join(w.get_attribute("data-channel") for w in waves))
    # Seeking by clicking the waveform moves the player (Range requests under the hood).
    driver.execute_script("arguments[0].pause()", player)
    waves[0].click()
    wait("a click on the waveform to seek", 10,
         lambda: abs(driver.execute_script("return arguments[0].currentTime", player) - duration / 2) < 0.5)
    step("seek by waveform click")
    streams = driver.find_elements(By.CSS_SELECTOR, "#streams tbody tr")
    if len(streams) < 2:
        raise SystemExit(f"FAILED: {len(streams)} stream rows")
    # Quality over the call: both directions' MOS lines drawn in their colours.
    drawn = driver.execute_script("""
        const c = document.getElementById('quality-over-time');
        if (!c) return null;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const count = (r, g, b) => { let n = 0; for (let i = 0; i < d.length; i += 4)
            if (d[i] === r && d[i + 1] === g && d[i + 2] === b && d[i + 3] === 255) n++; return n; };
        return [count(0x2b, 0x6c, 0xb0), count(0xc0, 0x56, 0x21)];""")
    step(f"quality over the call: pixels per direction {drawn}")
    intervals = [len(s["over_time"]["intervals"]) for s in record["streams"] if s.get("over_time")]
    if drawn is None or min(intervals) < 2 or min(drawn) < 20:
        raise SystemExit(f"FAILED: quality over time {drawn}, intervals {intervals}")
    ladder = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#ladder tbody tr")]
    step(f"SIP ladder: {len(ladder)} messages, first {ladder[:1]}")
    if len(ladder) != len(record["sip"]["ladder"]) or len(ladder) < 5 or "INVITE" not in ladder[0]:
        raise SystemExit(f"FAILED: ladder {ladder}")
    driver.save_screenshot(os.path.join(shots, "call.png"))
    step("ok")
finally:
    driver.quit()
