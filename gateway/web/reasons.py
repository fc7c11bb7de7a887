"""Why the workbench refused what was typed or clicked, worded in each of its languages.

A refusal's ``reason`` is English everywhere else (the API's ``detail``, the audit log); on a page in
Vietnamese an English sentence under a Vietnamese heading is the "developer's admin page" the issue
describes (issue 11 newcomer: "the first day comes after the last one: swap them" in Vietnamese
mode).  A :class:`PageRefusal` carries both wordings; the API still answers ``detail`` in English.
"""

from __future__ import annotations

from gateway.api.problems import HTTP_DETAILS
from gateway.policy import Refusal
from gateway.serving.refusals import PAGE_CODES

REASONS: dict[str, dict[str, str]] = {
    "vi": {
        "not-a-date": "“{text}” không phải là ngày: hãy chọn ngày, hoặc gõ theo dạng 2026-11-23",
        "report-needs-period": "Báo cáo phải có kỳ: chọn một kỳ ({presets}) hoặc hai ngày",
        "report-too-long": "Một báo cáo tối đa mười năm: hãy chọn kỳ ngắn hơn",
        "days-swapped": "Ngày bắt đầu sau ngày kết thúc: hãy đổi chỗ hai ngày",
        "unknown-period": "Kỳ phải là một trong: {presets}",
        "text-too-long": "Ô “{name}” dài quá {limit} ký tự",
        "unknown-category": "Nhóm sự kiện phải là một trong: {choices}",
        "unknown-outcome": "Kết quả phải là một trong: {choices}",
        "page-not-number": "Số trang phải là số nguyên",
        "page-out-of-range": "Số trang phải từ 1 đến {limit}",
        "no-such-entry": "Nhật ký không có mục số {index}",
        "no-such-document": "Không có văn bản nào mang mã này trên cổng; hãy tra cứu ở trang Tra cứu nhật ký",
        "csrf-foreign": "Biểu mẫu được gửi từ một trang khác",
        "csrf-stale": "Biểu mẫu đã cũ hoặc không đến từ bàn làm việc này: hãy tải lại trang",
        "no-such-page": "Không có trang nào ở địa chỉ này: hãy kiểm tra địa chỉ, hoặc bắt đầu lại từ các liên kết",
        "method-not-allowed": "Địa chỉ này không nhận thao tác đó",
        "front-malformed-request": "Máy chủ không đọc được yêu cầu trình duyệt gửi: hãy tải lại trang",
        "front-uri-too-long": "Địa chỉ quá dài (tối đa 8 KiB): hãy rút ngắn nội dung tìm kiếm",
        "front-headers-too-large": "Yêu cầu mang quá nhiều cookie: hãy xóa cookie của trang này rồi đăng nhập lại",
        "front-request-timeout": "Yêu cầu đến quá chậm: hãy thử lại",
        "front-too-large": "Nội dung gửi lên quá lớn",
    },
    "en": {
        "not-a-date": "“{text}” is not a date: pick one or type it as 2026-11-23",
        "report-needs-period": "a report is for a period: one of {presets}, or two dates",
        "report-too-long": "a report covers at most ten years: choose a shorter period",
        "days-swapped": "the first day comes after the last one: swap them",
        "unknown-period": "period must be one of {presets}",
        "text-too-long": "{name} is longer than {limit} characters",
        "unknown-category": "category must be one of {choices}",
        "unknown-outcome": "outcome must be one of {choices}",
        "page-not-number": "page must be a whole number",
        "page-out-of-range": "page must be between 1 and {limit}",
        "no-such-entry": "the log has no entry {index}",
        "no-such-document": "no document with this gateway id; search at /audit/search",
        "csrf-foreign": "the form was posted from another site",
        "csrf-stale": "the form is stale or did not come from this workbench; reload the page",
        "no-such-page": HTTP_DETAILS["not-found"],
        "method-not-allowed": HTTP_DETAILS["method-not-allowed"],
        "front-malformed-request": "the server cannot read the request the browser sent: reload the page",
        "front-uri-too-long": "the address is too long (at most 8 KiB): shorten what you searched for",
        "front-headers-too-large": "the request carries too many cookies: clear this site's cookies and log in again",
        "front-request-timeout": "the request arrived too slowly: try again",
        "front-too-large": "what was sent is too large",
    },
}


# The generic HTTP refusals (gateway.api.problems.HTTP_DETAILS) by their code.
HTTP_REASONS = {"not-found": "no-such-page", "method-not-allowed": "method-not-allowed"}
# What the HTTP front refuses before the app sees the request (gateway.serving.worker), by code.
FRONT_REASONS = {code: "front-" + code for code in PAGE_CODES}


def worded(key: str, **values: object) -> dict[str, str]:
    """The reason ``key`` in every language, its ``{placeholders}`` filled in."""
    return {lang: reasons[key].format(**values) for lang, reasons in REASONS.items()}


class PageRefusal(Refusal):
    """A :class:`Refusal` of a workbench page's input; ``reason`` (the API's detail, the log's) is English."""

    def __init__(self, code: str, key: str, **values: object) -> None:
        self.worded = worded(key, **values)
        super().__init__(code, self.worded["en"])
