#ifndef OPENMM_TIMEWARP_REFERENCETIMEWARPKERNELFACTORY_H_
#define OPENMM_TIMEWARP_REFERENCETIMEWARPKERNELFACTORY_H_

#include "openmm/KernelFactory.h"

namespace TimewarpPlugin {

/**
 * Creates the Timewarp kernels for the Reference and CPU platforms.  For the small molecules the
 * models handle, the cost of a step is the model call and one energy evaluation through the Context,
 * so one platform-independent kernel serves both.
 */
class ReferenceTimewarpKernelFactory : public OpenMM::KernelFactory {
public:
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl& context) const;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_REFERENCETIMEWARPKERNELFACTORY_H_*/
