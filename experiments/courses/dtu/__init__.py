"""Companion: DTU 02460, week 1."""
