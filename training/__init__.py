"""``vdpm_harness_training``: trainers that produce checkpoints for model plugins (installed from ``training/``).

Arrows run training -> plugins -> core: a trainer may import the model plugin it trains and its input code, and is
never imported by a plugin or by the core. See ``training/README.md``.
"""
