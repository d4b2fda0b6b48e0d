#ifndef OPENMM_TIMEWARP_COMMONTIMEWARPKERNELS_H_
#define OPENMM_TIMEWARP_COMMONTIMEWARPKERNELS_H_

#include "TimewarpKernels.h"
#include "openmm/Vec3.h"
#include <random>
#include <vector>

namespace TimewarpPlugin {

class ProposalModel;

/**
 * The Metropolis-Hastings chain of TimewarpIntegrator, written once for every platform: batching of
 * proposals, the acceptance test, the adaptive batch size, hybrid Monte Carlo moves, the velocity
 * redraw, the chirality check of exploration mode and checkpointing.  Energies come from the
 * ContextImpl, so every force of the integration groups, bias forces included, is part of the target.
 *
 * What a platform-specific kernel would do differently is behind protected virtual hooks: where
 * positions, velocities and forces are read and written (here through the generic ContextImpl API,
 * which copies them to the host) and which model draws the proposals, on which device (here the
 * integrator's own model, on the CPU).  A GPU kernel derives from this class and overrides those.
 */
class CommonIntegrateTimewarpStepKernel : public IntegrateTimewarpStepKernel {
public:
    CommonIntegrateTimewarpStepKernel(std::string name, const OpenMM::Platform& platform) :
            IntegrateTimewarpStepKernel(name, platform), model(NULL), removeCenterOfMassMotion(false), numProposed(0),
            numAccepted(0), adaptProposed(0), adaptAccepted(0), numHMCProposed(0), numHMCAccepted(0), nextProposal(0) {
    }
    /**
     * Initialize the kernel: read the masses, seed the chain's random stream and the model's.
     *
     * @param system      the System this kernel will be applied to
     * @param integrator  the TimewarpIntegrator this kernel will be used for
     */
    void initialize(const OpenMM::System& system, const TimewarpIntegrator& integrator);
    /**
     * Take a number of Metropolis-Hastings steps, each followed by a hybrid Monte Carlo move when the
     * step count reaches a multiple of the integrator's interval, then redraw the velocities.
     *
     * @param context     the context in which to execute this kernel
     * @param integrator  the TimewarpIntegrator this kernel is being used for
     * @param steps       the number of steps
     */
    void execute(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, int steps);
    /** Compute the kinetic energy of the Context's velocities. */
    double computeKineticEnergy(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator);
    /** Get the number of proposals made since the last reset. */
    long long getNumProposed() const {
        return numProposed;
    }
    /** Get the number of proposals accepted since the last reset. */
    long long getNumAccepted() const {
        return numAccepted;
    }
    /** Get the number of hybrid Monte Carlo moves made since the last reset. */
    long long getNumHMCProposed() const {
        return numHMCProposed;
    }
    /** Get the number of hybrid Monte Carlo moves accepted since the last reset. */
    long long getNumHMCAccepted() const {
        return numHMCAccepted;
    }
    /** Reset the acceptance statistics (not the counts that drive the adaptive batch size). */
    void resetStatistics() {
        numProposed = numAccepted = numHMCProposed = numHMCAccepted = 0;
    }
    /** Write the chain's state (random streams, pending proposals, statistics) to a checkpoint. */
    void createCheckpoint(OpenMM::ContextImpl& context, std::ostream& stream) const;
    /** Restore the chain's state from a checkpoint written by createCheckpoint(). */
    void loadCheckpoint(OpenMM::ContextImpl& context, std::istream& stream);
protected:
    /**
     * Choose the model that draws proposals.  The default is the integrator's own model (on the CPU);
     * a GPU kernel would load integrator.getModelData() onto its device here.
     */
    virtual ProposalModel& selectModel(const TimewarpIntegrator& integrator);
    /** Draw numProposals proposals from the positions x, with the non-energy part of their log MH ratios. */
    virtual void propose(const TimewarpIntegrator& integrator, const std::vector<OpenMM::Vec3>& x, int numProposals,
                         std::vector<std::vector<OpenMM::Vec3> >& proposals, std::vector<double>& logRatios);
    /** Copy the Context's positions to the host. */
    virtual void getPositions(OpenMM::ContextImpl& context, std::vector<OpenMM::Vec3>& positions);
    /** Set the Context's positions from the host. */
    virtual void setPositions(OpenMM::ContextImpl& context, const std::vector<OpenMM::Vec3>& positions);
    /** Copy the forces of the last force computation to the host. */
    virtual void getForces(OpenMM::ContextImpl& context, std::vector<OpenMM::Vec3>& forces);
    /** Copy the Context's velocities to the host. */
    virtual void getVelocities(OpenMM::ContextImpl& context, std::vector<OpenMM::Vec3>& velocities);
    /** Set the Context's velocities from the host. */
    virtual void setVelocities(OpenMM::ContextImpl& context, const std::vector<OpenMM::Vec3>& velocities);
private:
    double uniform();
    double gaussian();
    int batchSize(const TimewarpIntegrator& integrator) const;
    double energy(OpenMM::ContextImpl& context, int groups);
    double refreshCurrentState(OpenMM::ContextImpl& context, int groups);
    bool metropolisHastingsStep(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, double& currentEnergy);
    bool preservesChirality(const TimewarpIntegrator& integrator, const std::vector<OpenMM::Vec3>& y) const;
    void resampleVelocities(OpenMM::ContextImpl& context, double temperature);
    void moveTo(const std::vector<OpenMM::Vec3>& positions);
    void hybridMonteCarloMove(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, double& currentEnergy);
    double velocityVerlet(OpenMM::ContextImpl& context, int groups, int steps, double dt, std::vector<OpenMM::Vec3>& x,
                          std::vector<OpenMM::Vec3>& v);
    double kineticEnergy(const std::vector<OpenMM::Vec3>& velocities) const;
    ProposalModel* model;
    std::mt19937_64 random;
    std::vector<double> masses;
    bool removeCenterOfMassMotion;
    long long numProposed, numAccepted;
    // Acceptance counts that drive the adaptive batch size; unlike the statistics, users cannot reset them.
    long long adaptProposed, adaptAccepted;
    long long numHMCProposed, numHMCAccepted;
    // The state the pending proposals were drawn from, and the proposals not yet consumed.
    std::vector<OpenMM::Vec3> current;
    std::vector<std::vector<OpenMM::Vec3> > pending;
    std::vector<double> pendingLogRatios;
    int nextProposal;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_COMMONTIMEWARPKERNELS_H_*/
