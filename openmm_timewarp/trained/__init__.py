"""The shipped proposal models: data only.

Each model is a TorchScript file following the proposal-model contract (``NAME.pt``, which also
carries its integrator settings) with a JSON file of the same name recording how it was made and
how well it samples (provenance and measured quality).  Open one with
:meth:`openmm_timewarp.model_file.ModelFile.open`; :func:`openmm_timewarp.model_file.available_models`
lists them.
"""
# Transitional, for the modules of the parallel restructuring that still import these names here
# (integrator.py, tito_integrator.py and __init__.py); the lead deletes this block at merge.
from ..model_file import _load_module, available_models, resolve_model_path as model_path  # noqa: E402,F401


def load_module(path):  # noqa: D103 - transitional, see above
    with open(model_path(path), "rb") as f:
        return _load_module(f.read(), str(path))[0]
