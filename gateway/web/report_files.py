"""The overview as files for the reporting system: XLSX (openpyxl) and CSV, each naming its period and time.

The XLSX holds what the page shows, one sheet per table, headed in the reader's language; the CSV
is one row per agency plus the city's, with the API's column names, for machines.
"""

from __future__ import annotations

import io
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from gateway.audit.spreadsheet import csv_table
from gateway.audit.statistics import FIELDS, AgencyFigures, Overview
from gateway.citizen.dossier import LOCAL
from gateway.web.i18n import TEXT, Words

# (attribute, label); rates are written as percentages, as the page shows them.
FIGURE_COLUMNS = (
    ("received", "received"),
    ("dossiers", "dossiers"),
    ("done", "done"),
    ("done_rate", "done"),
    ("on_time", "on_time"),
    ("on_time_rate", "on_time"),
    ("late", "late"),
    ("late_rate", "late"),
    ("overdue_open", "overdue_open"),
    ("unresolved", "unresolved"),
    ("average_days", "average_days"),
    ("p90_days", "p90_days"),
    ("rated", "rated"),
    ("satisfaction_rate", "satisfaction"),
    ("refused_sent", "refused_sent"),
)


def _header(attribute: str, label: str, t: dict[str, str]) -> str:
    if attribute.endswith("_rate"):
        return f"{t[label]} (%)"
    return f"{t[label]} ({t['working_days']})" if attribute.endswith("_days") else t[label]


def _value(figures: AgencyFigures, attribute: str) -> Any:
    value = getattr(figures, attribute)
    return round(value * 100, 2) if attribute.endswith("_rate") else value


def _generated(report: Overview) -> str:
    return report.generated_at.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S (UTC+7)")


def _figure_row(figures: AgencyFigures, t: dict[str, str]) -> list[Any]:
    return [figures.name or t["city"], figures.agency or "*", *(_value(figures, a) for a, _ in FIGURE_COLUMNS)]


def _add(sheet: Any, values: list[Any]) -> None:
    """One row; characters a worksheet cannot hold (C0 controls) dropped, not failing the city's report."""
    sheet.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in values])


def as_xlsx(report: Overview, lang: str) -> bytes:
    t, words = TEXT[lang], Words(lang)
    book = Workbook()
    bold = Font(bold=True)
    book.remove(book.worksheets[0])
    summary = book.create_sheet(t["overview"][:31])
    _add(summary, [t["title"]])
    _add(summary, [t["period"], report.start.isoformat(), report.end.isoformat()])
    _add(summary, [t["generated"], _generated(report)])
    _add(summary, [t["as_of_note"]])
    _add(summary, [])
    city = report.city
    for label, value in (
        (t["received"], city.received),
        (t["dossiers"], city.dossiers),
        (t["done"], city.done),
        (t["done"] + " (%)", round(city.done_rate * 100, 2)),
        (t["on_time"], city.on_time),
        (t["on_time"] + " (%)", round(city.on_time_rate * 100, 2)),
        (t["late"], city.late),
        (t["late"] + " (%)", round(city.late_rate * 100, 2)),
        (t["overdue_open"], city.overdue_open),
        (t["unresolved"], city.unresolved),
        (t["average_days"] + f" ({t['working_days']})", city.average_days),
        (t["p90_days"] + f" ({t['working_days']})", city.p90_days),
        (t["satisfaction"] + " (%)", round(city.satisfaction_rate * 100, 2) if city.rated else None),
        (t["rated"], city.rated),
        (t["refused_total"], report.refused_total),
        (t["refused_sent"], city.refused_sent),  # the per-agency sheet's column adds up to this
        (t["refused_citizens"], report.refused_citizens),
    ):
        _add(summary, [label, value])
    summary.column_dimensions["A"].width = 44
    agencies = book.create_sheet(t["per_agency"][:31])
    _add(agencies, [t["agency"], t["code"], *(_header(a, label, t) for a, label in FIGURE_COLUMNS)])
    for figures in [*report.agencies, report.city]:
        _add(agencies, _figure_row(figures, t))
    agencies.column_dimensions["A"].width = 48
    refusals = book.create_sheet(t["refusals"][:31])
    _add(refusals, [t["code"], t["reason"], t["count"], t["example"]])
    for r in report.refusals:
        _add(refusals, [r.code, words.refusal(r.code), r.count, r.example])
    trend = book.create_sheet(t["trend"][:31])
    _add(trend, [t["time"], t["received"], t["on_time"], t["late"]])
    for p in report.trend:
        _add(trend, [p.start.isoformat(), p.received, p.on_time, p.late])
    overdue = book.create_sheet(t["most_overdue"][:31])
    _add(overdue, [words.field("document_id"), t["subject"], t["agency"], t["code"], t["due_date"], t["days_overdue"]])
    for d in report.overdue:
        _add(overdue, [d.document_id, d.subject, d.agency_name, d.agency, d.due_date, d.days_overdue])
    for sheet in book.worksheets:
        for cell in sheet[1]:
            cell.font = bold
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f":  # openpyxl takes any text starting with "=" for a formula
                    cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_csv(report: Overview) -> str:
    """The overview's per-agency rows and the city's (``*``), each stamped with the period and generation time."""
    stamp = {
        "period_start": report.start.isoformat(),
        "period_end": report.end.isoformat(),
        "generated_at": report.generated_at.astimezone(LOCAL).isoformat(timespec="seconds"),  # +07:00, as the XLSX says
    }
    rows = [{**row.as_dict(), **stamp} for row in report.agencies]
    rows.append({**report.city.as_dict(), "agency": "*", "name": "*", **stamp})
    return csv_table([*FIELDS, *stamp], rows, for_people=True)
