"""Training of proposal kernels: one loop (``loop.py``) and an objective per architecture
(``objectives.py`` for flows trained on pairs, ``tito.py`` for TITO); the backbone density fit
(``backbone.py``); pair-shard loading and energies."""
