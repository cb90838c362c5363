"""The HTML report, written by the CLI on real digits and opened in headless Chromium."""

import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from oneclass.cli import main

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    args = [
        "fit",
        "--normal",
        "0,6,9",
        "--out",
        str(out),
        "--encoder",
        "ae",
        "--encoder-epochs",
        "1",
        "--head-epochs",
        "3",
        "--train-limit",
        "1500",
        "--test-limit",
        "800",
        "--device",
        "cpu",
        "--quiet",
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_fit_writes_a_self_contained_report(report_run):
    page = (report_run / "report.html").read_text()
    assert "AUROC" in page and "Most abnormal" in page and "Latent space" in page and "Configuration" in page
    sources = re.findall(r'src="([^"]*)"', page) + re.findall(r"src='([^']*)'", page)
    assert len(sources) >= 64 + 4  # 64 thumbnails, histogram, ROC/PR, training, latent map
    assert all(s.startswith("data:image/png;base64,") for s in sources)  # nothing outside the file


def test_report_verb_rewrites_the_page(report_run):
    (report_run / "report.html").unlink()
    result = CliRunner().invoke(main, ["report", str(report_run)], catch_exceptions=False)
    assert result.exit_code == 0 and (report_run / "report.html").is_file()


def test_report_on_a_folder_without_a_run_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "config.json" in result.output


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    return found


def test_report_renders_in_chromium_without_broken_images_or_errors(report_run, tmp_path):
    chromium = _chromium()
    url = (report_run / "report.html").resolve().as_uri()
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile1'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stderr[-2000:]
    assert 'data-broken-images="0"' in body.group(0)
    assert int(re.search(r'data-images="(\d+)"', body.group(0)).group(1)) >= 68
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console_errors == []

    screenshot = report_run / "report.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--window-size=1280,2400",
            f"--screenshot={screenshot}",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert screenshot.stat().st_size > 50_000  # a real rendering, not a blank page
