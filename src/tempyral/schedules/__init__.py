"""Schedules: the spec engine (spec.py: which times a schedule's spec matches)."""
