"""openmm-timewarp: learned, time-coarsened Metropolis-Hastings sampling inside OpenMM.

Importing the package loads the compiled plugin and registers its platform-independent kernel with
every platform OpenMM has loaded, so a ``TimewarpIntegrator`` can be used with any ``Context`` or
``Simulation``.
"""
import os as _os

# libtorch and libOpenMM must be loaded before the plugin libraries that link against them.
import torch as _torch  # noqa: F401
import openmm as _openmm

try:
    from . import timewarpplugin as _plugin
except ImportError as _error:
    raise ImportError(f"openmm_timewarp was imported from {_os.path.dirname(__file__)}, which holds no compiled plugin: "
                      "install it with `bash install.sh`, and run tests with `pytest` rather than `python -m pytest` "
                      "(which puts the source folder first on sys.path)") from _error

_openmm.Platform.loadPluginLibrary(_os.path.join(_os.path.dirname(_plugin.__file__), "libOpenMMTimewarpCommon.so"))

#: Why the CUDA kernel is not in use, or None when it is: the plugin is built only where OpenMM's CUDA
#: platform was found, and loads only where that platform does (a GPU and its driver). Without it the
#: common kernel serves the CUDA platform too, copying positions through the host.
CUDA_KERNEL_UNAVAILABLE = None
_cuda_plugin = _os.path.join(_os.path.dirname(_plugin.__file__), "libOpenMMTimewarpCUDA.so")
if not _os.path.exists(_cuda_plugin):
    CUDA_KERNEL_UNAVAILABLE = "openmm-timewarp was built without its CUDA kernel (OpenMM's CUDA platform was not found at build time)"
elif "CUDA" not in [_openmm.Platform.getPlatform(_i).getName() for _i in range(_openmm.Platform.getNumPlatforms())]:
    _failures = [_f for _f in _openmm.Platform.getPluginLoadFailures() if "libOpenMMCUDA" in _f]
    CUDA_KERNEL_UNAVAILABLE = "OpenMM's CUDA platform is not available" + (": " + _failures[0] if _failures else
                                                                            " (openmm-cuda-13 or -12 is not installed)")
else:
    # Loaded after the common kernel's library, so that its kernel replaces the common one on CUDA.
    _openmm.Platform.loadPluginLibrary(_cuda_plugin)
    if not _torch.cuda.is_available():
        # The plugin then creates the common kernel on CUDA (model on the CPU), which still works.
        CUDA_KERNEL_UNAVAILABLE = f"torch {_torch.__version__} cannot use CUDA here (a CPU build of torch, or no device)"

from .integrator import TimewarpIntegrator  # noqa: E402
from .model_file import ModelFile  # noqa: E402
from .tito_integrator import TitoIntegrator  # noqa: E402
from .model_file import available_models  # noqa: E402

__version__ = "0.1.0"
__all__ = ["TimewarpIntegrator", "TitoIntegrator", "ModelFile", "available_models", "sample", "run_md"]


def __getattr__(name: str):
    # The high-level API pulls in mdtraj and matplotlib: load it on first use only.
    if name in ("sample", "run_md"):
        from . import run
        return getattr(run, name)
    raise AttributeError(f"module 'openmm_timewarp' has no attribute {name!r}")
