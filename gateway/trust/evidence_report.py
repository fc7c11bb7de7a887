"""The evidence check's result in words, Vietnamese by default (Circular 15/2025/TT-BKHCN asks a
validation result to state: valid or not, the signer, the signing time, the integrity of the data)."""

from __future__ import annotations

from typing import Any, Literal

Lang = Literal["vi", "en"]

_WORDS: dict[str, dict[Lang, str]] = {
    "verdict": {"vi": "Kết quả", "en": "Result"},
    "valid": {"vi": "HỢP LỆ", "en": "VALID"},
    "invalid": {"vi": "KHÔNG HỢP LỆ", "en": "NOT VALID"},
    "indeterminate": {
        "vi": "CHƯA XÁC ĐỊNH (không có bằng chứng trạng thái chứng thư số)",
        "en": "INDETERMINATE (no evidence of the certificate's status)",
    },
    "pinned": {"vi": "Chứng thư niêm phong đã ghim", "en": "Pinned seal certificate"},
    "document": {"vi": "Văn bản (mã trên cổng)", "en": "Document (gateway id)"},
    "signer": {"vi": "Người ký", "en": "Signer"},
    "sender": {"vi": "Cơ quan gửi", "en": "Sending agency"},
    "signing_time": {"vi": "Thời điểm ký (dấu thời gian RFC 3161)", "en": "Signing time (RFC 3161 timestamp)"},
    "tsa": {"vi": "Tổ chức cấp dấu thời gian", "en": "Timestamp authority"},
    "integrity": {"vi": "Tính toàn vẹn", "en": "Integrity"},
    "intact": {
        "vi": "nội dung không bị thay đổi kể từ khi ký",
        "en": "the content is unchanged since it was signed",
    },
    "status": {
        "vi": "Trạng thái chứng thư số khi cổng nhận văn bản",
        "en": "Certificate status when the gateway received the document",
    },
    "good": {"vi": "còn hiệu lực, không bị thu hồi", "en": "valid, not revoked"},
    "not-established": {
        "vi": "không xác định được (được chấp nhận có đánh dấu)",
        "en": "not established (accepted, flagged)",
    },
    "seal": {"vi": "Niêm phong của cổng", "en": "Gateway seal"},
    "received": {"vi": "cổng nhận lúc", "en": "received by the gateway at"},
    "recipients": {"vi": "nơi nhận", "en": "recipients"},
    "audit": {"vi": "Nhật ký kiểm toán", "en": "Audit log"},
    "entries": {"vi": "mục có trong nhật ký đã ký, kích thước", "en": "entries in the signed log of size"},
    "cosigned_by": {"vi": "đồng ký bởi các nhân chứng", "en": "cosigned by the witnesses"},
    "part": {"vi": "Phần không đạt", "en": "Failing part"},
    "reason": {"vi": "Lý do", "en": "Reason"},
    "notes": {"vi": "Ghi chú", "en": "Notes"},
    "certificate-expired-after-signing": {
        "vi": "chứng thư số đã hết hạn SAU thời điểm ký (chữ ký vẫn có giá trị): ",
        "en": "the certificate expired AFTER the signing time (the signature stays valid): ",
    },
    "timestamp-delayed": {
        "vi": "dấu thời gian được cấp sau khi nhận (giây): ",
        "en": "the timestamp was obtained this many seconds after receipt: ",
    },
    "status-flagged": {
        "vi": "cổng chấp nhận khi chưa xác định được trạng thái: ",
        "en": "accepted while the status could not be established: ",
    },
}


def _w(key: str, lang: Lang) -> str:
    return _WORDS[key][lang]


def render(report: dict[str, Any], lang: Lang = "vi") -> str:
    lines = [f"{_w('verdict', lang)}: {_w(report['verdict'], lang)}"]
    if report.get("document"):
        lines.append(f"{_w('document', lang)}: {report['document']}")
    if report["verdict"] == "invalid":
        lines.append(f"{_w('part', lang)}: {report.get('part', '?')}")
        lines.append(f"{_w('reason', lang)}: [{report.get('code')}] {report.get('reason')}")
        return "\n".join(lines)
    revocation = report.get("revocation", {})
    state = revocation.get("state", "not-established")
    status = _w("good", lang) if state == "good" else _w("not-established", lang)
    if revocation.get("source"):
        status += f" ({revocation['source'].upper()}, {revocation.get('this_update')}, {revocation.get('responder')})"
    audit = report.get("audit", {})
    lines += [
        f"{_w('signer', lang)}: {report.get('signer')} (SHA-256 {report.get('signer_sha256')})",
        f"{_w('sender', lang)}: {report.get('sender')}",
        f"{_w('signing_time', lang)}: {report.get('signing_time')}",
        f"{_w('tsa', lang)}: {report.get('timestamp_authority')}",
        f"{_w('integrity', lang)}: {_w('intact', lang)}",
        f"{_w('status', lang)}: {status}",
        f"{_w('seal', lang)}: {_w('valid', lang)}; {_w('received', lang)} {report.get('received_at')}; "
        f"{_w('recipients', lang)} {', '.join(report.get('recipients', []))}",
        f"{_w('audit', lang)}: {len(audit.get('entries', []))} {_w('entries', lang)} {audit.get('checkpoint_size')}"
        + (f"; {_w('cosigned_by', lang)} {', '.join(audit['cosigned_by'])}" if audit.get("cosigned_by") else ""),
    ]
    notes = []
    for note in report.get("notes", []):
        key, _, detail = str(note).partition(":")
        notes.append(_w(key, lang) + detail if key in _WORDS else str(note))
    if notes:
        lines.append(f"{_w('notes', lang)}: " + "; ".join(notes))
    pinned = report.get("gateway_certificate")
    if pinned:
        lines.append(f"{_w('pinned', lang)}: {pinned['sha256']} ({pinned['file']})")
    return "\n".join(lines)
