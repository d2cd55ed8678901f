"""The report in a real browser: headless Chromium renders reports/index.html at 1280x800, every
figure must load and the verdict must be readable on the first screen, without scrolling.

Skips where no Chromium is installed (Debian/Ubuntu: `apt-get install chromium`), except in CI
(`CI=true`, which `.ci/run` exports after installing Chromium): there a missing browser is a
failure, so CI never passes without having rendered the report. Run it alone with
`pytest -m browser`; the screenshot lands in the test's tmp_path (printed on failure).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fixtures import BINARY, binary_evaluate, ten_class_evaluate, write_outputs

from pipeline.report import build_report, load_inputs

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 800  # a laptop's first screen
DIGITS_NOTE = ("Removed 775 of 1259 training images to simulate imbalance (prepare.imbalance: "
               "auto, which does this on the digits demo only): 31 of class '1', 53 of class '2', "
               "73 of class '3', 86 of class '4', 97 of class '5', 103 of class '6', 107 of class "
               "'7', 109 of class '8', 116 of class '9'. Set prepare.imbalance: none to keep them "
               "all.")
# Runs after the page's load event (all images done, failed or not) and leaves its findings in an
# attribute of <html> that --dump-dom prints; the page's layout is untouched.
PROBE = """<script>
window.addEventListener("load", () => {
  const box = sel => { const e = document.querySelector(sel); if (!e) return null;
    const r = e.getBoundingClientRect(); return {top: r.top + scrollY, bottom: r.bottom + scrollY,
    text: e.textContent}; };
  const imgs = [...document.images].map(i => ({src: i.getAttribute("src"), ok: i.complete &&
    i.naturalWidth > 0, w: i.naturalWidth, shown: i.getBoundingClientRect().width}));
  document.documentElement.dataset.probe = JSON.stringify({imgs, viewport: innerHeight,
    width: innerWidth, verdict: box(".verdict"), notice: box(".notice"), glance: box(".glance"),
    scrollWidth: document.documentElement.scrollWidth});
});
</script>"""


def chromium() -> str | None:
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)


def render(html: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
         f"--window-size={WIDTH},{HEIGHT}", "--run-all-compositor-stages-before-draw",
         "--virtual-time-budget=10000", *extra, html.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)


def probe(report_dir: Path, tmp_path: Path) -> dict:
    """Layout facts of the report as Chromium lays it out (a copy with PROBE appended)."""
    copy = tmp_path / "probed"
    shutil.copytree(report_dir, copy)
    page = copy / "index.html"
    page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = render(page, tmp_path / "profile-probe", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    start = dom.stdout.index('data-probe="') + len('data-probe="')
    raw = dom.stdout[start : dom.stdout.index('"', start)]
    return json.loads(raw.replace("&quot;", '"').replace("&amp;", "&"))


def find_browser() -> str:
    """Chromium's path; a skip where there is none, a failure where CI=true."""
    path = chromium()
    if path is None and os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but no Chromium found (chromium, chromium-browser or google-chrome "
                    "on PATH): .ci/run installs it with apt-get; install it (apt-get install "
                    "chromium) so CI shows that the report renders")
    if path is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def browser() -> str:
    return find_browser()


@pytest.mark.parametrize("kind", ["binary", "ten_classes"])
def test_report_figures_load_and_the_verdict_is_on_the_first_screen(
    browser: str, tmp_path: Path, kind: str
) -> None:
    names = BINARY if kind == "binary" else [str(c) for c in range(10)]
    evaluate = binary_evaluate() if kind == "binary" else ten_class_evaluate()
    root = write_outputs(tmp_path / "run", class_names=names, evaluate=evaluate)
    if kind == "ten_classes":  # the digits demo: prepare's simulated long tail, said up front
        prepare = json.loads((root / "metrics/prepare.json").read_text())
        prepare["data_changes"] = [DIGITS_NOTE]
        (root / "metrics/prepare.json").write_text(json.dumps(prepare))
    html = build_report(load_inputs(root / "metrics", root / "plots"), out_dir=tmp_path / "reports",
                        mlflow_note="no MLflow store in this test")
    shot = tmp_path / "first_screen.png"
    result = render(html, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    facts = probe(html.parent, tmp_path)
    where = f"(screenshot: {shot})"

    # --dump-dom lays the page out in a window of WIDTH x HEIGHT whose browser UI takes a strip:
    # innerHeight is then about what a laptop's browser shows of the page (~650 px)
    assert facts["width"] == WIDTH and 500 <= facts["viewport"] <= HEIGHT, facts
    first_screen = facts["viewport"]
    figures = sorted(p.name for p in (html.parent / "figures").glob("*.png")
                     if not p.name.endswith("_original.png"))
    assert sorted(Path(i["src"]).name for i in facts["imgs"]) == figures, where
    broken = [i["src"] for i in facts["imgs"] if not i["ok"]]
    assert not broken, f"images that did not load: {broken} {where}"
    # every figure is drawn at a readable size, none wider than the page
    assert all(200 <= i["shown"] <= WIDTH for i in facts["imgs"]), (facts["imgs"], where)
    assert facts["scrollWidth"] <= WIDTH, f"the page scrolls sideways {where}"
    verdict, notice, glance = facts["verdict"], facts["notice"], facts["glance"]
    assert 0 < verdict["top"] < verdict["bottom"] <= first_screen, f"verdict: {verdict} {where}"
    # what the data is, and what the pipeline did to it, come before the verdict
    assert glance["bottom"] <= verdict["top"], where
    assert "training images per class: " in glance["text"]
    if kind == "ten_classes":
        assert notice["bottom"] <= verdict["top"] and DIGITS_NOTE in notice["text"], where
        assert notice["text"].startswith("The pipeline changed the data before training")
    else:
        assert notice is None
        assert "malignant: 147, benign: 399; test split 156 images" in glance["text"]
