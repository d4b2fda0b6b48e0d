#ifndef OPENMM_TIMEWARP_REFERENCETIMEWARPKERNELS_H_
#define OPENMM_TIMEWARP_REFERENCETIMEWARPKERNELS_H_

#include "TimewarpKernels.h"
#include "openmm/Vec3.h"
#include <random>
#include <vector>

namespace TimewarpPlugin {

/**
 * The Metropolis-Hastings loop for the Reference and CPU platforms.  Energies come from the
 * ContextImpl, so every force of the integration groups, bias forces included, is part of the target.
 */
class ReferenceIntegrateTimewarpStepKernel : public IntegrateTimewarpStepKernel {
public:
    ReferenceIntegrateTimewarpStepKernel(std::string name, const OpenMM::Platform& platform) :
            IntegrateTimewarpStepKernel(name, platform), model(NULL), numProposed(0), numAccepted(0), adaptProposed(0),
            adaptAccepted(0), numHMCProposed(0), numHMCAccepted(0), nextProposal(0) {
    }
    void initialize(const OpenMM::System& system, const TimewarpIntegrator& integrator);
    void execute(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, int steps);
    double computeKineticEnergy(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator);
    long long getNumProposed() const {
        return numProposed;
    }
    long long getNumAccepted() const {
        return numAccepted;
    }
    long long getNumHMCProposed() const {
        return numHMCProposed;
    }
    long long getNumHMCAccepted() const {
        return numHMCAccepted;
    }
    void resetStatistics() {
        numProposed = numAccepted = numHMCProposed = numHMCAccepted = 0;
    }
    void createCheckpoint(OpenMM::ContextImpl& context, std::ostream& stream) const;
    void loadCheckpoint(OpenMM::ContextImpl& context, std::istream& stream);
private:
    double uniform();
    double gaussian();
    int batchSize(const TimewarpIntegrator& integrator) const;
    double energy(OpenMM::ContextImpl& context, int groups);
    bool preservesChirality(const TimewarpIntegrator& integrator, const std::vector<OpenMM::Vec3>& y) const;
    void resampleVelocities(OpenMM::ContextImpl& context, double temperature);
    void moveTo(const std::vector<OpenMM::Vec3>& positions);
    void hybridMonteCarloMove(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, double& currentEnergy);
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

#endif /*OPENMM_TIMEWARP_REFERENCETIMEWARPKERNELS_H_*/
