"""audit search: a claimed but unverified identity is not an actor

Before issue 13, a refused ``POST /oauth/token`` stored the request's unverified ``client_id`` as
the entry's ``actor``, so anyone could make an agency appear in auditors' searches by agency.  The
entries themselves are signed and stay as they are; their rows in the (derived) search index move
the claimed code to ``claimed_actor``, searched only when an auditor asks for it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CLAIMED_EVENTS = ("auth.token.refused",)


def upgrade() -> None:
    op.add_column("audit_search", sa.Column("claimed_actor", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_audit_search_claimed_actor"), "audit_search", ["claimed_actor"], unique=False)
    for event in CLAIMED_EVENTS:
        op.execute(
            sa.text(
                "UPDATE audit_search SET claimed_actor = substr(actor, 1, 64), actor = NULL "
                "WHERE event = :event AND outcome = 'refused'"
            ).bindparams(event=event)
        )


def downgrade() -> None:
    op.execute("UPDATE audit_search SET actor = claimed_actor WHERE claimed_actor IS NOT NULL")
    op.drop_index(op.f("ix_audit_search_claimed_actor"), table_name="audit_search")
    op.drop_column("audit_search", "claimed_actor")
