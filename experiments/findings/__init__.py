# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The report's further findings, beyond what the brief asks: Q3 with other optimizers and trained
for longer, Q4's convergence and amortization gap, and the two extra VAEs (the true ELBO, pixels in
[0, 1]) that ``assess`` compares with Q1 and Q3.
"""
