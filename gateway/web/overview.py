"""The workbench's first page: the city's figures for a period, per agency, with the trend and the laggards."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Response, redirect, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from gateway.api.auditors import Auditor, record_read
from gateway.audit.periods import PRESETS
from gateway.audit.statistics import Overview
from gateway.services import services
from gateway.web.blueprint import auditor_page, bp, language, page
from gateway.web.chart import trend_chart
from gateway.web.periods import ChosenPeriod, report_period
from gateway.web.report_files import as_csv, as_xlsx


def _report(auditor: Auditor, what: str) -> tuple[ChosenPeriod, Overview]:
    period = report_period()
    start, end = period.bounds
    report = services().statistics.overview(start, end, datetime.now(UTC))
    record_read(auditor, "auditor.statistics", f"workbench {what} {period.first}..{period.last}")
    return period, report


def _download(body: bytes | str, mimetype: str, name: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.get("/")
@auditor_page
def overview(auditor: Auditor) -> str:
    period, report = _report(auditor, "overview")
    query = period.query()
    return page(
        "overview.html",
        report=report,
        period=period,
        presets=PRESETS,
        chart=trend_chart(report.trend, report.trend_unit),
        xlsx=url_for("web.overview_xlsx") + "?" + urlencode(query),
        csv=url_for("web.overview_csv") + "?" + urlencode(query),
    )


@bp.get("/overview.xlsx")
@auditor_page
def overview_xlsx(auditor: Auditor) -> Response:
    period, report = _report(auditor, "xlsx")
    return _download(
        as_xlsx(report, language()),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        f"bao-cao-{period.first}-{period.last}.xlsx",
    )


@bp.get("/overview.csv")
@auditor_page
def overview_csv(auditor: Auditor) -> Response:
    period, report = _report(auditor, "csv")
    return _download(as_csv(report), "text/csv", f"bao-cao-{period.first}-{period.last}.csv")


@bp.get("/statistics")
def statistics() -> WerkzeugResponse:
    """The figures moved to the overview (issue 11); old links and bookmarks land there."""
    return redirect(url_for("web.overview") + ("?" + urlencode(request.args) if request.args else ""))


@bp.get("/statistics.csv")
def statistics_csv() -> WerkzeugResponse:
    return redirect(url_for("web.overview_csv") + ("?" + urlencode(request.args) if request.args else ""))
