"""`accountlens report account ID --out FILE.html [--pdf FILE.pdf]`: the account review for a
customer meeting (docs/report.md), the same HTML as `GET /reports/accounts/{id}`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from accountlens.cli.common import DirOption, fail, open_workspace

report_app = typer.Typer(help="Reports in business terms, to print or hand out (docs/report.md).",
                         no_args_is_help=True)


@report_app.command("account")
def account(
    account_id: Annotated[str, typer.Argument(help="The account id.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
    directory: DirOption = Path("."),
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="The day it is as of, YYYY-MM-DD (default: the latest active event day).")] = None,
    pdf: Annotated[Path | None, typer.Option(
        "--pdf", help="Also print it to this PDF (needs Debian's chromium).")] = None,
) -> None:
    """The account review for a customer meeting: one HTML page, and a PDF with --pdf.

    Value realised, adoption by team and role, seats against the contract, health and its
    drivers, risks and recommended next steps, with charts; self-contained, A4 when printed."""
    from accountlens.analysis.account_detail import EntityNotFound
    from accountlens.report.pdf import PdfError, print_pdf

    with open_workspace(directory) as ws:
        try:
            html = ws.account_review(account_id, as_of=as_of)
        except (EntityNotFound, ValueError) as exc:
            fail(str(exc.args[0]) if exc.args else str(exc))
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"wrote {out}")
    if pdf is not None:
        try:
            print_pdf(out, pdf)
        except PdfError as exc:
            fail(str(exc))
        typer.echo(f"wrote {pdf}")
