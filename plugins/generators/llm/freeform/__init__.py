"""The ``freeform-qa`` generator: trajectories, validation, output tables and the plugin (:mod:`.generator`)."""
