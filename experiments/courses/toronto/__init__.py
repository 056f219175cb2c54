"""Companion: Toronto CSC412/2506, "Variational Auto Encoders"."""
