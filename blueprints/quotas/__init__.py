"""Booking quotas: the Quota model and the rule that refuses a booking over one."""
