"""Catalogue management, quotas and the audit trail for district administrators (/admin/)."""
