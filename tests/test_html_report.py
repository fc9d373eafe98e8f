"""`--report PATH.html`: one self-contained page (no network), a sortable table, the plots and
the settings; loaded in a real headless Chromium when one is installed (Debian's `chromium`)."""
import csv
import html as html_mod
import io
import re
import shutil
import subprocess
import sys

import pytest

from repo_paths import ROOT, WORKLOADS

SEED = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")
SPEC = """name: tiny
base: {model: mixtral-8x7b, gpus: 64, global_batch: 128, seq_length: 4096,
       distributed_optimizer: true}
grid: {tp: [2, 4], ep: [4, 8]}
"""


def collsim(*args):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    (d / "tiny.yaml").write_text(SPEC)
    p = collsim("sweep", d / "tiny.yaml", "-o", d / "tiny.csv", "--report", d / "tiny.html",
                "--executor", "serial", "--no-plots", "--quiet")
    assert p.returncode == 0, p.stderr
    return d / "tiny.html", d / "tiny.csv"


def _self_contained(text: str) -> None:
    # nothing fetched: no remote or relative src/href, images inline
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|[^"'#d])""", text), \
        re.search(r"""(src|href)\s*=\s*["']?(https?:|//|[^"'#d])""", text)
    assert "<link" not in text and "@import" not in text


def test_sweep_report_is_self_contained_with_table_plots_settings(sweep_report):
    page, table = sweep_report
    text = page.read_text()
    _self_contained(text)
    rows = list(csv.reader(io.StringIO(table.read_text())))
    assert text.count("<tr>") == len(rows)                  # header + every point
    assert text.count("data:image/png;base64,") == 3       # heatmap, breakdown, Pareto
    models = {r[rows[0].index("cost_model")] for r in rows[1:]}
    for fragment in ("Settings", "spec contents", "cost model", "click a column", *models):
        assert fragment in text
    assert not (page.parent / "tiny-heatmap.png").exists()  # --no-plots: only in the page


def test_simulate_report_needs_draws(tmp_path):
    p = collsim("simulate", SEED, "--report", tmp_path / "r.html")
    assert p.returncode == 2 and "--draws" in p.stderr and not (tmp_path / "r.html").exists()
    q = collsim("simulate", SEED, "--straggler", "fraction=0.05,compute=1.2,seed=1",
                "--draws", "3", "--report", tmp_path / "r.html", "--quiet")
    assert q.returncode == 0, q.stderr
    text = (tmp_path / "r.html").read_text()
    _self_contained(text)
    assert text.count("<tr>") == 1 + 3 and "Every draw" in text
    assert text.count("data:image/png;base64,") == 1


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium installed (apt-get install chromium)")


def _load(browser: str, url: str) -> tuple[str, list[str]]:
    p = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln]
    return p.stdout, console


def test_report_loads_in_chromium_and_sorts(sweep_report):
    browser = _chromium()
    page, table = sweep_report
    rows = list(csv.reader(io.StringIO(table.read_text())))
    col = rows[0].index("iteration_ms")
    dom, console = _load(browser, page.as_uri() + f"#sort={col}-")
    assert console == []                                    # no errors, no logging at all
    assert 'data-ready="1"' in dom                          # the script ran to its end
    body = dom[dom.index("<tbody>"):dom.index("</tbody>")]
    cells = [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", body)]
    assert len(cells) == len(rows) - 1
    shown = [float(html_mod.unescape(c[col])) for c in cells]
    assert shown == sorted(shown, reverse=True)             # sorted descending in the browser
    assert shown != [float(r[col]) for r in rows[1:]] or len(set(shown)) == 1
