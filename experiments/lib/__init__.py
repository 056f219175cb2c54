"""The shared library under every question: data (MNIST, splits, batches), probability (every
density, KL and estimator), models, VAE training, the companion's MLP VAE, sample measures,
plotting, seeding and the contract between a section module and the pipeline.
"""
