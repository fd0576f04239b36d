"""One feed token per user and feed: partial unique indexes replace a unique constraint that
never fired (its nullable target columns made every row distinct). Duplicates made meanwhile
are removed first, keeping each user's oldest token of a feed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:30:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        "DELETE FROM feed_tokens WHERE id NOT IN ("
        " SELECT MIN(id) FROM feed_tokens"
        " GROUP BY user_id, kind, COALESCE(organisation_id, 0), COALESCE(station_id, 0))"
    )
    with op.batch_alter_table('feed_tokens', schema=None) as batch_op:
        batch_op.drop_constraint('uq_feed_tokens_user_target', type_='unique')
        batch_op.create_index('uq_feed_tokens_user_organisation', ['user_id', 'organisation_id'], unique=True,
                              sqlite_where=sa.text('station_id IS NULL'),
                              postgresql_where=sa.text('station_id IS NULL'))
        batch_op.create_index('uq_feed_tokens_user_station', ['user_id', 'station_id'], unique=True,
                              sqlite_where=sa.text('organisation_id IS NULL'),
                              postgresql_where=sa.text('organisation_id IS NULL'))


def downgrade():
    with op.batch_alter_table('feed_tokens', schema=None) as batch_op:
        batch_op.drop_index('uq_feed_tokens_user_station')
        batch_op.drop_index('uq_feed_tokens_user_organisation')
        batch_op.create_unique_constraint('uq_feed_tokens_user_target',
                                          ['user_id', 'kind', 'organisation_id', 'station_id'])
