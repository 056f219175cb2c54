"""The companion (report/companion.pdf): what four other courses ask of the same VAE, one folder per
course. Their texts are in the course folder of the brief; docstrings cite them by course and
question number.
"""
