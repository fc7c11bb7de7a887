"""The auditor workbench: server-rendered pages under ``/audit/`` in Vietnamese and English.

``blueprint`` holds what every page shares (session, language, masking, error pages); one module
per page family: ``login`` (national-ID login and the welcome page), ``overview`` (the leaders'
figures and their XLSX/CSV), ``search``, ``documents`` (a document and a log entry, with proofs),
``log_pages`` (checkpoint and export).  Importing them registers their routes on ``bp``.
"""

from __future__ import annotations

from gateway.web import documents, log_pages, login, overview, search
from gateway.web.blueprint import bp

__all__ = ["bp", "documents", "log_pages", "login", "overview", "search"]
