"""who recorded a statement as paid (statements.paid_by_id)

Revision ID: 9a41c2e7d3b5
Revises: 5e0c3a7b91d4
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9a41c2e7d3b5"
down_revision: str | None = "5e0c3a7b91d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FOREIGN_KEY = "fk_statements_paid_by_id_staff_users"

# Reviewed by hand. Added in place, as d15b07e5a1c0 explains (SQLite cannot copy statements while lines
# refer to it). Statements paid before this revision keep NULL: who paid them is in the audit trail
# (action statement.paid), not in a column, and is not guessed here.


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE statements ADD COLUMN paid_by_id INTEGER CONSTRAINT {FOREIGN_KEY}"
            " REFERENCES staff_users (id)"
        )
        return
    op.add_column("statements", sa.Column("paid_by_id", BIG_ID, nullable=True))
    op.create_foreign_key(FOREIGN_KEY, "statements", "staff_users", ["paid_by_id"], ["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE statements DROP COLUMN paid_by_id")
        return
    op.drop_constraint(FOREIGN_KEY, "statements", type_="foreignkey")
    op.drop_column("statements", "paid_by_id")
