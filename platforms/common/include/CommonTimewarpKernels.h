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
 * What a platform-specific kernel does differently is behind protected virtual hooks: where the
 * current state, the pending proposals and hybrid Monte Carlo trajectories live (here on the host,
 * moved through the generic ContextImpl API) and which model draws the proposals, on which device
 * (here the integrator's own model, on the CPU).  A GPU kernel (CudaIntegrateTimewarpStepKernel)
 * derives from this class and overrides them; the random streams, the acceptance test and the
 * bookkeeping stay here, so every platform runs the same chain.
 */
class CommonIntegrateTimewarpStepKernel : public IntegrateTimewarpStepKernel {
public:
    CommonIntegrateTimewarpStepKernel(std::string name, const OpenMM::Platform& platform) :
            IntegrateTimewarpStepKernel(name, platform), model(NULL), removeCenterOfMassMotion(false), numProposed(0),
            numAccepted(0), adaptProposed(0), adaptAccepted(0), numHMCProposed(0), numHMCAccepted(0), numPending(0), nextProposal(0) {
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
     * a GPU kernel loads integrator.getModelData() onto its device here.
     */
    virtual ProposalModel& selectModel(const TimewarpIntegrator& integrator);
    /** The model chosen by selectModel(), once initialize() has run. */
    ProposalModel& getProposalModel() const {
        return *model;
    }
    /*
     * Where the chain's positions live.  The chain keeps a current state (the positions the pending
     * proposals were drawn from, and which the Context holds between steps) and a batch of pending
     * proposals.  The defaults below keep both on the host and move positions through the generic
     * ContextImpl API; a GPU kernel overrides all of them together, so that positions stay on its
     * device and the chain above never touches them.
     */
    /**
     * Read the Context's positions and make them the current state if they differ from it (pending
     * proposals are then discarded by the caller).
     *
     * @return whether the Context held other positions than the current state
     * @throws OpenMM::OpenMMException if the positions contain NaN or infinite values
     */
    virtual bool readCurrentState(OpenMM::ContextImpl& context);
    /**
     * Draw a batch of proposals from the current state, replacing the pending ones; their log ratios
     * go to pendingLogRatios (on the host, where the acceptance test runs).
     */
    virtual void drawProposals(const TimewarpIntegrator& integrator, int numProposals);
    /**
     * Put pending proposal `index` into the Context.
     *
     * @return false, leaving the Context unchanged, if the proposal has NaN or infinite coordinates
     */
    virtual bool loadProposal(OpenMM::ContextImpl& context, int index);
    /** Whether pending proposal `index` keeps the handedness of every chiral centre of the current state. */
    virtual bool proposalPreservesChirality(const TimewarpIntegrator& integrator, int index);
    /** Make pending proposal `index`, which the Context holds, the current state. */
    virtual void acceptProposal(OpenMM::ContextImpl& context, int index);
    /** Put the current state back into the Context. */
    virtual void restoreCurrentState(OpenMM::ContextImpl& context);
    /**
     * Integrate a hybrid Monte Carlo trajectory with velocity Verlet from the current state (which the
     * Context holds) and the initial velocities v0, leaving its end point in the Context.
     *
     * @param finalKinetic  on exit, the kinetic energy at the end point
     * @return the potential energy of the integration groups at the end point (NaN if it is not finite)
     */
    virtual double integrateTrajectory(OpenMM::ContextImpl& context, int groups, int steps, double dt,
                                       const std::vector<OpenMM::Vec3>& v0, double& finalKinetic);
    /** Make the end point of the last trajectory, which the Context holds, the current state. */
    virtual void acceptTrajectory(OpenMM::ContextImpl& context);
    /** Copy the current state and the first numPending pending proposals to the host (for a checkpoint). */
    virtual void getChainPositions(std::vector<OpenMM::Vec3>& current, int numPending,
                                   std::vector<std::vector<OpenMM::Vec3> >& pending) const;
    /** Restore the current state and the pending proposals from the host (from a checkpoint). */
    virtual void setChainPositions(const std::vector<OpenMM::Vec3>& current, const std::vector<std::vector<OpenMM::Vec3> >& pending);
    /** Copy the Context's velocities to the host. */
    virtual void getVelocities(OpenMM::ContextImpl& context, std::vector<OpenMM::Vec3>& velocities);
    /** Set the Context's velocities from the host. */
    virtual void setVelocities(OpenMM::ContextImpl& context, const std::vector<OpenMM::Vec3>& velocities);
    /** The masses of the particles, in Daltons. */
    const std::vector<double>& getMasses() const {
        return masses;
    }
    /**
     * The masses of the particles in the current hybrid Monte Carlo move, in Daltons: the System's,
     * raised to the integrator's getHMCMinimumMass().
     */
    const std::vector<double>& getHMCMasses() const {
        return hmcMasses;
    }
    /** The kinetic energy of velocities with these masses. */
    static double kineticEnergy(const std::vector<OpenMM::Vec3>& velocities, const std::vector<double>& particleMasses);
    /** The non-energy part of the log MH ratio of each pending proposal. */
    std::vector<double> pendingLogRatios;
private:
    double uniform();
    double gaussian();
    int batchSize(const TimewarpIntegrator& integrator) const;
    double energy(OpenMM::ContextImpl& context, int groups);
    double refreshCurrentState(OpenMM::ContextImpl& context, int groups);
    bool metropolisHastingsStep(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, double& currentEnergy);
    void discardPending();
    void resampleVelocities(OpenMM::ContextImpl& context, double temperature);
    void hybridMonteCarloMove(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, double& currentEnergy);
    double velocityVerlet(OpenMM::ContextImpl& context, int groups, int steps, double dt, std::vector<OpenMM::Vec3>& x,
                          std::vector<OpenMM::Vec3>& v);
    void setHMCMasses(double minimumMass);
    ProposalModel* model;
    std::mt19937_64 random;
    std::vector<double> masses, hmcMasses;
    // The minimum mass hmcMasses were computed for.
    double hmcMinimumMass;
    bool removeCenterOfMassMotion;
    long long numProposed, numAccepted;
    // Acceptance counts that drive the adaptive batch size; unlike the statistics, users cannot reset them.
    long long adaptProposed, adaptAccepted;
    long long numHMCProposed, numHMCAccepted;
    // How many proposals are pending (their log ratios are in pendingLogRatios) and the next one to use.
    int numPending, nextProposal;
    // The host storage of the default hooks: the current state, the pending proposals and the end
    // point of the last trajectory.  A kernel that overrides the hooks leaves them empty.
    std::vector<OpenMM::Vec3> current;
    std::vector<std::vector<OpenMM::Vec3> > pending;
    std::vector<OpenMM::Vec3> trajectoryEnd;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_COMMONTIMEWARPKERNELS_H_*/
