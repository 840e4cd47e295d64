"""Operating Beckon: the local KRaft broker, ``beckon up`` and ``beckon replay``."""
