"""Comparison: metrics, budgets and verdicts. Pure numpy; outputs in, a result object out."""
