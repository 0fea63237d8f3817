"""Printing a report's HTML to PDF with Debian's headless Chromium (the system package, never a
downloaded browser): the HTML holds no script and no URL, so the PDF is made offline."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Headless printing, with nothing started that reaches the network (updates, sync, QUIC).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-quic")
TIMEOUT_SECONDS = 120


class PdfError(RuntimeError):
    """The PDF could not be made; the message says why and what to do."""


def chromium() -> str | None:
    """Debian's Chromium (/usr/bin/chromium), else `chromium` on PATH; None without either."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    return shutil.which("chromium")


def print_pdf(html: Path, pdf: Path, timeout: float = TIMEOUT_SECONDS) -> None:
    """Print the HTML file `html` to `pdf` (A4, as its print CSS says)."""
    browser = chromium()
    if browser is None:
        raise PdfError(f"no Chromium to print the PDF with (looked for {CHROMIUM} and "
                       f"`chromium` on PATH); the HTML was written to {html}: install Debian's "
                       "chromium package, or print the HTML from a browser")
    pdf = pdf.resolve()
    with tempfile.TemporaryDirectory(prefix="accountlens-chromium-") as profile:
        command = [browser, *FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={pdf}",
                   html.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise PdfError(f"Chromium did not print the PDF within {timeout:g} s; the HTML was "
                           f"written to {html}") from exc
    if done.returncode != 0 or not pdf.exists() or pdf.read_bytes()[:5] != b"%PDF-":
        said = (done.stderr or "").strip().splitlines()[-3:]
        raise PdfError(f"Chromium could not print the PDF (exit code {done.returncode}"
                       + (f": {' / '.join(said)}" if said else "") + f"); the HTML was written "
                       f"to {html}")
