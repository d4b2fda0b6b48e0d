#ifndef OPENMM_TIMEWARP_CUDATIMEWARPKERNELFACTORY_H_
#define OPENMM_TIMEWARP_CUDATIMEWARPKERNELFACTORY_H_

#include "openmm/KernelFactory.h"

namespace TimewarpPlugin {

/**
 * Creates the CUDA kernel of TimewarpIntegrator.  Registered for the CUDA platform only, after the
 * common factory, so that it replaces the common kernel there.
 */
class CudaTimewarpKernelFactory : public OpenMM::KernelFactory {
public:
    /**
     * Create a kernel: the CUDA kernel when torch can use CUDA, else the common kernel (model on the
     * CPU, positions copied through the host), so that a CPU-only torch still runs the chain.
     */
    OpenMM::KernelImpl* createKernelImpl(std::string name, const OpenMM::Platform& platform, OpenMM::ContextImpl& context) const;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_CUDATIMEWARPKERNELFACTORY_H_*/
