#ifndef OPENMM_TIMEWARP_COMMONTIMEWARPKERNELFACTORY_H_
#define OPENMM_TIMEWARP_COMMONTIMEWARPKERNELFACTORY_H_

#include "openmm/KernelFactory.h"

namespace TimewarpPlugin {

/**
 * Creates the platform-independent Timewarp kernel (CommonIntegrateTimewarpStepKernel) for any
 * platform.  The plugin registers it with every platform OpenMM has loaded (Reference, CPU, and
 * CUDA, OpenCL or HIP where present); a platform-specific plugin registered later replaces it for
 * its own platform.
 */
class CommonTimewarpKernelFactory : public OpenMM::KernelFactory {
public:
    /**
     * Create a kernel.
     *
     * @throws OpenMM::OpenMMException for a kernel name this factory does not know
     */
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl& context) const;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_COMMONTIMEWARPKERNELFACTORY_H_*/
