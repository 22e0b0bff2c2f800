"""Headless Chromium from Debian's packages (``chromium`` and ``chromium-driver``, installed by
``scripts/env.sh``), driven with Selenium, for tests that look at a page as a person would."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.processes import ROOT

#: Where tests save screenshots (kept after the run; CI can collect them).
ARTIFACTS = Path(os.environ.get("ACP_TEST_ARTIFACTS", str(ROOT / "test-artifacts")))


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_binary = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver_binary, "chromium and chromium-driver are missing: scripts/env.sh installs them"
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    options.binary_location = binary
    driver = webdriver.Chrome(service=Service(driver_binary), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path
