# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The shared library under every question: data (MNIST, splits, batches), probability (every
density, KL and estimator), models, VAE training, the companion's MLP VAE, sample measures,
plotting, seeding and the contract between a section module and the pipeline.
"""
