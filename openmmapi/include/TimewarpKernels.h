#ifndef OPENMM_TIMEWARP_TIMEWARPKERNELS_H_
#define OPENMM_TIMEWARP_TIMEWARPKERNELS_H_

#include "TimewarpIntegrator.h"
#include "openmm/KernelImpl.h"
#include "openmm/System.h"
#include <iosfwd>
#include <string>

namespace TimewarpPlugin {

/**
 * The platform kernel behind TimewarpIntegrator: it runs the Metropolis-Hastings loop against the
 * Context's energy and keeps the chain's state (the pending batch of proposals, random streams and
 * acceptance statistics).
 */
class IntegrateTimewarpStepKernel : public OpenMM::KernelImpl {
public:
    static std::string Name() {
        return "IntegrateTimewarpStep";
    }
    IntegrateTimewarpStepKernel(std::string name, const OpenMM::Platform& platform) : OpenMM::KernelImpl(name, platform) {
    }
    /**
     * Initialize the kernel.
     *
     * @param system      the System this kernel will be applied to
     * @param integrator  the TimewarpIntegrator this kernel will be used for
     */
    virtual void initialize(const OpenMM::System& system, const TimewarpIntegrator& integrator) = 0;
    /**
     * Take a number of Metropolis-Hastings steps.
     *
     * @param context     the context in which to execute this kernel
     * @param integrator  the TimewarpIntegrator this kernel is being used for
     * @param steps       the number of steps
     */
    virtual void execute(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, int steps) = 0;
    /** Compute the kinetic energy of the Context's velocities. */
    virtual double computeKineticEnergy(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator) = 0;
    /** Get the number of proposals made since the last reset. */
    virtual long long getNumProposed() const = 0;
    /** Get the number of proposals accepted since the last reset. */
    virtual long long getNumAccepted() const = 0;
    /** Get the number of hybrid Monte Carlo moves made since the last reset. */
    virtual long long getNumHMCProposed() const = 0;
    /** Get the number of hybrid Monte Carlo moves accepted since the last reset. */
    virtual long long getNumHMCAccepted() const = 0;
    /** Reset the acceptance statistics. */
    virtual void resetStatistics() = 0;
    /** Write the chain's state (random streams, pending proposals, statistics) to a checkpoint. */
    virtual void createCheckpoint(OpenMM::ContextImpl& context, std::ostream& stream) const = 0;
    /** Restore the chain's state from a checkpoint written by createCheckpoint(). */
    virtual void loadCheckpoint(OpenMM::ContextImpl& context, std::istream& stream) = 0;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_TIMEWARPKERNELS_H_*/
