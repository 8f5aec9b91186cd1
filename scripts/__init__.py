"""Maintenance scripts: derive_budgets (budgets and known-failure ranges from measurements)."""
