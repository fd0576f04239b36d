"""Feedback after the day (issue 15, item 5): the booking organisation's rating (1–5) and comment
of a session it attended, one row per booking.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 18:30:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('booking_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('comment', sa.String(length=500), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('rating >= 1 AND rating <= 5', name=op.f('ck_booking_feedback_rating_1_to_5')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_booking_feedback_author_id_users'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_booking_feedback_booking_id_bookings'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_feedback')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_booking_feedback_booking_id'))
    )
    with op.batch_alter_table('booking_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_booking_feedback_author_id'), ['author_id'], unique=False)
        batch_op.create_index('ix_booking_feedback_created_at', ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('booking_feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_booking_feedback_created_at')
        batch_op.drop_index(batch_op.f('ix_booking_feedback_author_id'))
    op.drop_table('booking_feedback')
