"""users.must_change_password: false by default in the database too

The column came with the initial schema (NOT NULL, default only in Python). Accounts are now
also created outside the ORM (bulk invitations from the organisation import, SQL by operators),
so the database itself fills in false.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 12:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column(
            'must_change_password', existing_type=sa.Boolean(), existing_nullable=False,
            server_default=sa.false(),
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column(
            'must_change_password', existing_type=sa.Boolean(), existing_nullable=False,
            server_default=None,
        )
