"""The auditor workbench: server-rendered pages under ``/audit/`` in Vietnamese and English.

``blueprint`` holds what every page shares (session, language, masking), ``login`` the national-ID
login, ``pages`` the auditor's pages.  Importing the two registers their routes on ``bp``.
"""

from __future__ import annotations

from gateway.web import login, pages
from gateway.web.blueprint import bp

__all__ = ["bp", "login", "pages"]
