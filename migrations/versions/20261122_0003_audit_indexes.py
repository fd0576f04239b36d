"""Indexes for the audit trail's filters: booking and slot events by action (and booking events
by resulting status), newest first.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 15:00:00

"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('booking_events', schema=None) as batch_op:
        batch_op.create_index('ix_booking_events_action_at', ['action', 'at'], unique=False)
        batch_op.create_index('ix_booking_events_to_status_at', ['to_status', 'at'], unique=False)
    with op.batch_alter_table('slot_events', schema=None) as batch_op:
        batch_op.create_index('ix_slot_events_action_at', ['action', 'at'], unique=False)


def downgrade():
    with op.batch_alter_table('slot_events', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_events_action_at')
    with op.batch_alter_table('booking_events', schema=None) as batch_op:
        batch_op.drop_index('ix_booking_events_to_status_at')
        batch_op.drop_index('ix_booking_events_action_at')
