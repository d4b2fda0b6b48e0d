#include "CommonTimewarpKernelFactory.h"
#include "CommonTimewarpKernels.h"
#include "internal/windowsExportTimewarp.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"

using namespace TimewarpPlugin;
using namespace OpenMM;

extern "C" OPENMM_EXPORT_TIMEWARP void registerPlatforms() {
}

extern "C" OPENMM_EXPORT_TIMEWARP void registerKernelFactories() {
    // The chain only uses the generic ContextImpl API, so it runs on every platform; a platform that
    // keeps positions on a device pays host copies until it has its own kernel.
    for (int i = 0; i < Platform::getNumPlatforms(); i++)
        Platform::getPlatform(i).registerKernelFactory(IntegrateTimewarpStepKernel::Name(), new CommonTimewarpKernelFactory());
}

KernelImpl* CommonTimewarpKernelFactory::createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const {
    if (name == IntegrateTimewarpStepKernel::Name())
        return new CommonIntegrateTimewarpStepKernel(name, platform);
    throw OpenMMException("TimewarpIntegrator: the kernel factory cannot create a kernel named '" + name + "'");
}
