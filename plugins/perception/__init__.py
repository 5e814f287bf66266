"""Perception stages: detectors, trackers, 3D reconstructors and orientation estimators, one package each.

``grounding_dino``, ``sam2``, ``pi3`` and ``orient_anything`` wrap the models of the DSR Suite's data pipeline
(TencentARC/DSR_Suite, arXiv 2512.20557) on transformers; ``oracle`` reads a synthetic scene's exact truth, so each
stage's error can be measured. The ``video-tracks`` generator composes them by id.
"""
