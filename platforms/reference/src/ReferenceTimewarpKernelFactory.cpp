#include "ReferenceTimewarpKernelFactory.h"
#include "ReferenceTimewarpKernels.h"
#include "internal/windowsExportTimewarp.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"

using namespace TimewarpPlugin;
using namespace OpenMM;

extern "C" OPENMM_EXPORT_TIMEWARP void registerPlatforms() {
}

extern "C" OPENMM_EXPORT_TIMEWARP void registerKernelFactories() {
    for (int i = 0; i < Platform::getNumPlatforms(); i++) {
        Platform& platform = Platform::getPlatform(i);
        if (platform.getName() == "Reference" || platform.getName() == "CPU")
            platform.registerKernelFactory(IntegrateTimewarpStepKernel::Name(), new ReferenceTimewarpKernelFactory());
    }
}

KernelImpl* ReferenceTimewarpKernelFactory::createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const {
    if (name == IntegrateTimewarpStepKernel::Name())
        return new ReferenceIntegrateTimewarpStepKernel(name, platform);
    throw OpenMMException((std::string("Tried to create kernel with illegal kernel name '") + name + "'").c_str());
}
