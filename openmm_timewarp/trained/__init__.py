"""The shipped proposal models: data only.

Each model is a TorchScript file following the proposal-model contract (``NAME.pt``, which also
carries its integrator settings) with a JSON file of the same name recording how it was made and
how well it samples (provenance and measured quality).  Open one with
:meth:`openmm_timewarp.model_file.ModelFile.open`; :func:`openmm_timewarp.model_file.available_models`
lists them.
"""
