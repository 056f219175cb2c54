"""Companion: Eindhoven 2AMU20, the mixture-prior VAE."""
