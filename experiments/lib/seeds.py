# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""The seeds a run accepts, in a module without torch: the command line checks --seed before importing it.

Every draw of a run comes from the one seed: a module seeds its own generators with seed + k for
0 <= k < STREAMS (its ``Config.stream`` to stream + 3). torch's CPU generator keeps the low 32 bits
of a seed, so seeds 2^32 apart draw the same numbers: the seeds accepted are those whose every
stream seed + k stays below 2^32, and no two of them share a stream.
"""
STREAMS = 64  # stream offsets k available to a module's generators
SEED_MAX = 2**32 - STREAMS  # the largest seed accepted
