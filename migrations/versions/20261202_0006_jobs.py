"""The jobs outbox: work a change causes outside its transaction (mail, reminders), inserted in
that transaction and run by ``flask jobs run``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:00:00

"""
import sqlalchemy as sa
from alembic import op



revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

OPEN = sa.text('done_at IS NULL AND failed_at IS NULL')


def upgrade():
    op.create_table(
        'jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=False),
        sa.CheckConstraint('attempts >= 0', name=op.f('ck_jobs_attempts_not_negative')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
        sa.UniqueConstraint('key', name=op.f('uq_jobs_key')),
    )
    op.create_index('ix_jobs_open_run_after', 'jobs', ['run_after'], unique=False,
                    sqlite_where=OPEN, postgresql_where=OPEN)


def downgrade():
    op.drop_index('ix_jobs_open_run_after', table_name='jobs', sqlite_where=OPEN, postgresql_where=OPEN)
    op.drop_table('jobs')
