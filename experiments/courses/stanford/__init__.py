"""Companion: Stanford STATS305C, assignment 6."""
