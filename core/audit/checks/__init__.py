"""Audit checks: one small class per kind of issue, registered by name (see core.audit.checks.base)."""
