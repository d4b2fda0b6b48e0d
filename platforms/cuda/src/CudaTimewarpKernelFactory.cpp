#include "CudaTimewarpKernelFactory.h"
#include "CommonTimewarpKernels.h"
#include "CudaIntegrateTimewarpStepKernel.h"
#include "internal/windowsExportTimewarp.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/cuda/CudaPlatform.h"
#include "openmm/internal/ContextImpl.h"
#include <ATen/Context.h>
#include <iostream>

using namespace TimewarpPlugin;
using namespace OpenMM;

extern "C" OPENMM_EXPORT_TIMEWARP void registerPlatforms() {
}

extern "C" OPENMM_EXPORT_TIMEWARP void registerKernelFactories() {
    // Loaded after libOpenMMTimewarpCommon, so this replaces the common kernel on CUDA only.
    for (int i = 0; i < Platform::getNumPlatforms(); i++)
        if (Platform::getPlatform(i).getName() == "CUDA")
            Platform::getPlatform(i).registerKernelFactory(IntegrateTimewarpStepKernel::Name(), new CudaTimewarpKernelFactory());
}

/** The test hook of CudaIntegrateTimewarpStepKernel::getNumHostPositionCopies(), callable through ctypes. */
extern "C" OPENMM_EXPORT_TIMEWARP long long timewarpCudaNumHostPositionCopies() {
    return CudaIntegrateTimewarpStepKernel::getNumHostPositionCopies();
}

KernelImpl* CudaTimewarpKernelFactory::createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const {
    if (name != IntegrateTimewarpStepKernel::Name())
        throw OpenMMException("TimewarpIntegrator: the kernel factory cannot create a kernel named '" + name + "'");
    // A torch built without CUDA cannot put the model on the GPU: the common kernel still runs the
    // chain on the CUDA platform, with the model on the CPU.
    if (!at::globalContext().hasCUDA()) {
        static bool warned = false;
        if (!warned)
            std::cerr << "TimewarpIntegrator: this torch has no CUDA support; on the CUDA platform the model runs on the CPU "
                         "and positions are copied through the host (install a CUDA build of torch to keep them on the GPU)"
                      << std::endl;
        warned = true;
        return new CommonIntegrateTimewarpStepKernel(name, platform);
    }
    CudaContext& cu = *static_cast<CudaPlatform::PlatformData*>(context.getPlatformData())->contexts[0];
    return new CudaIntegrateTimewarpStepKernel(name, platform, cu);
}
