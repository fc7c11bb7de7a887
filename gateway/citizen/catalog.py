"""The catalog of administrative procedures (thủ tục hành chính) citizens can file through the gateway.

Operators supply it as a JSON list (``GATEWAY_PROCEDURES_FILE``); demo mode ships the entries below.
Their codes follow the national format (``1.000494``) but the demo entries — codes, names, agencies
and times — are illustrative, not the official national catalog.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.documents.identifiers import is_agency_code

Mode = Literal["parallel", "sequential"]


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    agencies: tuple[str, ...]
    mode: Mode  # parallel: every agency at once (liên thông); sequential: each after the previous finishes
    level: int  # required assurance level (Decree 69/2024/NĐ-CP account levels 1 and 2)
    processing_days: int  # working days
    fields: tuple[str, ...]  # required form fields

    def public_view(self) -> dict[str, Any]:
        view = asdict(self)
        view.update(agencies=list(self.agencies), fields=list(self.fields))
        return view


DEMO_PROCEDURES = (
    Procedure(
        "1.001612",
        "Đăng ký thành lập hộ kinh doanh, liên thông đăng ký thuế (demo)",
        ("000.00.11.H29", "000.11.18.G12"),
        "parallel",
        2,
        3,
        ("ten_ho_kinh_doanh", "dia_chi", "nganh_nghe", "von_kinh_doanh"),
    ),
    Procedure("1.000494", "Xác nhận thông tin cư trú (demo)", ("000.00.04.H29",), "parallel", 1, 2, ("ly_do",)),
    Procedure(
        "1.004227",
        "Liên thông đăng ký khai sinh, đăng ký thường trú (demo)",
        ("000.00.04.H29", "000.00.31.H29"),
        "sequential",
        2,
        5,
        ("ho_ten_tre", "ngay_sinh_tre"),
    ),
)


def load_catalog(path: Path | None, demo: bool) -> dict[str, Procedure]:
    if path is None:
        return {p.code: p for p in DEMO_PROCEDURES} if demo else {}
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{path}: the procedure catalog is a JSON list of procedures")
    catalog: dict[str, Procedure] = {}
    for n, entry in enumerate(entries):
        try:
            procedure = Procedure(
                code=str(entry["code"]),
                name=str(entry["name"]),
                agencies=tuple(entry["agencies"]),
                mode=entry.get("mode", "parallel"),
                level=int(entry.get("level", 2)),
                processing_days=int(entry["processing_days"]),
                fields=tuple(entry.get("fields", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: procedure #{n + 1} is incomplete ({exc})") from None
        if procedure.mode not in ("parallel", "sequential") or procedure.level not in (1, 2):
            raise ValueError(f"{path}: procedure {procedure.code}: mode parallel|sequential, level 1|2")
        if not procedure.agencies or not all(is_agency_code(a) for a in procedure.agencies):
            raise ValueError(f"{path}: procedure {procedure.code}: agencies must be agency codes")
        catalog[procedure.code] = procedure
    return catalog
