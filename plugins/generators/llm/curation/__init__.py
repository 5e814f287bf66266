"""The ``curate`` generator: inputs, attached video, reply parsing and the plugin (:mod:`.generator`)."""
