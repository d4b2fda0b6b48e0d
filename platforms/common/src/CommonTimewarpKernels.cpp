#include "CommonTimewarpKernels.h"
#include "ProposalModel.h"
#include "openmm/CMMotionRemover.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include <cmath>
#include <iostream>
#include <sstream>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

// Boltzmann's constant in kJ/mol/K (the molar gas constant / 1000, as OpenMM uses it).
static const double BOLTZMANN = 0.00831446261815324;
static const int CHECKPOINT_VERSION = 2;

namespace {

template <class T>
void writeValue(ostream& stream, const T& value) {
    stream.write((const char*) &value, sizeof(T));
}

template <class T>
T readValue(istream& stream) {
    T value;
    stream.read((char*) &value, sizeof(T));
    return value;
}

void writeString(ostream& stream, const string& value) {
    writeValue<long long>(stream, value.size());
    stream.write(value.data(), value.size());
}

string readString(istream& stream) {
    string value(readValue<long long>(stream), '\0');
    stream.read(&value[0], value.size());
    return value;
}

void writePositions(ostream& stream, const vector<Vec3>& positions) {
    writeValue<long long>(stream, positions.size());
    stream.write((const char*) positions.data(), positions.size() * sizeof(Vec3));
}

vector<Vec3> readPositions(istream& stream) {
    vector<Vec3> positions(readValue<long long>(stream));
    stream.read((char*) positions.data(), positions.size() * sizeof(Vec3));
    return positions;
}

bool allFinite(const vector<Vec3>& positions) {
    for (const Vec3& p : positions)
        if (!isfinite(p[0]) || !isfinite(p[1]) || !isfinite(p[2]))
            return false;
    return true;
}

double tripleProduct(const vector<Vec3>& x, int center, int a, int b, int c) {
    return (x[a] - x[center]).dot((x[b] - x[center]).cross(x[c] - x[center]));
}

} // namespace

void CommonIntegrateTimewarpStepKernel::initialize(const System& system, const TimewarpIntegrator& integrator) {
    masses.resize(system.getNumParticles());
    for (int i = 0; i < system.getNumParticles(); i++)
        masses[i] = system.getParticleMass(i);
    hmcMasses.clear();
    hmcMinimumMass = 0;
    removeCenterOfMassMotion = false;
    for (int i = 0; i < system.getNumForces(); i++)
        if (dynamic_cast<const CMMotionRemover*>(&system.getForce(i)) != NULL)
            removeCenterOfMassMotion = true;
    int seed = integrator.getRandomNumberSeed();
    random.seed(seed == 0 ? random_device()() : (uint64_t) seed);
    model = &selectModel(integrator);
    model->setRandomSeed(random());
}

double CommonIntegrateTimewarpStepKernel::uniform() {
    // 53 random bits: uniform on [0, 1), and identical on every standard library.
    return (random() >> 11) * (1.0 / 9007199254740992.0);
}

double CommonIntegrateTimewarpStepKernel::gaussian() {
    // Box-Muller without a cached second value, so the stream position is all the state there is.
    double u = 1.0 - uniform();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * uniform());
}

int CommonIntegrateTimewarpStepKernel::batchSize(const TimewarpIntegrator& integrator) const {
    int maximum = integrator.getProposalsPerBatch();
    if (!integrator.getAdaptiveBatchSize())
        return maximum;
    // Enough proposals that at least one is accepted with probability 0.9 (Timewarp's rule), with the
    // acceptance rate estimated with a uniform prior so that it starts at 1/2.
    double rate = (adaptAccepted + 1.0) / (adaptProposed + 2.0);
    double size = ceil(log(0.1) / log1p(-rate));
    return (int) max(1.0, min((double) maximum, size));
}

double CommonIntegrateTimewarpStepKernel::energy(ContextImpl& context, int groups) {
    try {
        return context.calcForcesAndEnergy(false, true, groups);
    }
    catch (const OpenMMException&) {
        // A platform may refuse a pathological configuration (NaN coordinates): that is a rejection.
        return NAN;
    }
}

double CommonIntegrateTimewarpStepKernel::refreshCurrentState(ContextImpl& context, int groups) {
    // Proposals drawn from other positions than the Context's are no longer valid: discard them.
    if (readCurrentState(context))
        discardPending();
    double currentEnergy = energy(context, groups);
    if (!isfinite(currentEnergy))
        throw OpenMMException("TimewarpIntegrator: the energy of the current positions is not finite");
    return currentEnergy;
}

bool CommonIntegrateTimewarpStepKernel::metropolisHastingsStep(ContextImpl& context, const TimewarpIntegrator& integrator,
                                                               double& currentEnergy) {
    if (nextProposal >= numPending) {
        int size = batchSize(integrator);
        drawProposals(integrator, size);
        numPending = size;
        nextProposal = 0;
    }
    int index = nextProposal++;
    double logRatio = pendingLogRatios[index];
    if (!loadProposal(context, index))
        return false;
    int groups = integrator.getIntegrationForceGroups();
    double proposalEnergy = energy(context, groups);
    double deltaEnergy = proposalEnergy - currentEnergy;
    bool accept;
    if (integrator.getMetropolisHastings()) {
        double beta = 1.0 / (BOLTZMANN * integrator.getTemperature());
        accept = isfinite(deltaEnergy) && isfinite(logRatio) && log(uniform()) < -beta * deltaEnergy + logRatio;
    }
    else
        accept = isfinite(deltaEnergy) && deltaEnergy <= integrator.getExplorationEnergyThreshold() &&
                 proposalPreservesChirality(integrator, index);
    if (accept) {
        currentEnergy = proposalEnergy;
        acceptProposal(context, index);
        discardPending();
    }
    else
        restoreCurrentState(context);
    return accept;
}

void CommonIntegrateTimewarpStepKernel::execute(ContextImpl& context, const TimewarpIntegrator& integrator, int steps) {
    int groups = integrator.getIntegrationForceGroups();
    double currentEnergy = 0;
    for (int step = 0; step < steps; step++) {
        // Forces may change between calls (a metadynamics bias, new parameters), and updateContextState()
        // may move atoms, so the current energy is recomputed at the start of a call and whenever forces
        // were invalidated.
        if (context.updateContextState() || step == 0)
            currentEnergy = refreshCurrentState(context, groups);
        bool accept = metropolisHastingsStep(context, integrator, currentEnergy);
        numProposed++;
        adaptProposed++;
        if (accept) {
            numAccepted++;
            adaptAccepted++;
        }
        context.setTime(context.getTime() + integrator.getStepSize());
        context.setStepCount(context.getStepCount() + 1);
        if (integrator.getHMCInterval() > 0 && context.getStepCount() % integrator.getHMCInterval() == 0)
            hybridMonteCarloMove(context, integrator, currentEnergy);
    }
    resampleVelocities(context, integrator.getTemperature());
}

void CommonIntegrateTimewarpStepKernel::hybridMonteCarloMove(ContextImpl& context, const TimewarpIntegrator& integrator,
                                                             double& currentEnergy) {
    // Velocity Verlet from fresh Maxwell-Boltzmann velocities, accepted on the change of the total
    // energy: exact for the Boltzmann distribution of the integration force groups.  The step size
    // varies by up to 20% from move to move, independently of the state, so that no vibration whose
    // period the trajectory length matches stays frozen (a resonance of fixed-length HMC).  The
    // masses are the metric of the kinetic energy only; raising the lightest ones slows the fastest
    // vibrations (hydrogens) and leaves the distribution of positions unchanged.
    double kT = BOLTZMANN * integrator.getTemperature();
    double dt = integrator.getHMCStepSize() * (0.8 + 0.4 * uniform());
    setHMCMasses(integrator.getHMCMinimumMass());
    int numParticles = masses.size();
    vector<Vec3> v(numParticles);
    for (int i = 0; i < numParticles; i++)
        v[i] = Vec3(gaussian(), gaussian(), gaussian()) * sqrt(kT / hmcMasses[i]);
    double initial = currentEnergy + kineticEnergy(v, hmcMasses);
    double finalKinetic;
    double potential = integrateTrajectory(context, integrator.getIntegrationForceGroups(), integrator.getHMCSteps(), dt, v,
                                           finalKinetic);
    double deltaH = potential + finalKinetic - initial;
    numHMCProposed++;
    if (isfinite(deltaH) && log(uniform()) < -deltaH / kT) {
        numHMCAccepted++;
        currentEnergy = potential;
        acceptTrajectory(context);
        discardPending();
    }
    else
        restoreCurrentState(context);
}

void CommonIntegrateTimewarpStepKernel::setHMCMasses(double minimumMass) {
    if (hmcMasses.size() == masses.size() && minimumMass == hmcMinimumMass)
        return;
    hmcMinimumMass = minimumMass;
    hmcMasses.resize(masses.size());
    for (int i = 0; i < (int) masses.size(); i++)
        hmcMasses[i] = max(masses[i], minimumMass);
}

double CommonIntegrateTimewarpStepKernel::integrateTrajectory(ContextImpl& context, int groups, int steps, double dt,
                                                              const vector<Vec3>& v0, double& finalKinetic) {
    vector<Vec3> x = current, v = v0;
    double potential = velocityVerlet(context, groups, steps, dt, x, v);
    finalKinetic = kineticEnergy(v, hmcMasses);
    trajectoryEnd.swap(x);
    return potential;
}

void CommonIntegrateTimewarpStepKernel::acceptTrajectory(ContextImpl& context) {
    current.swap(trajectoryEnd);
}

double CommonIntegrateTimewarpStepKernel::velocityVerlet(ContextImpl& context, int groups, int steps, double dt, vector<Vec3>& x,
                                                         vector<Vec3>& v) {
    // The Context holds x on entry, so its forces are those of the first half kick.
    int numParticles = hmcMasses.size();
    vector<double> halfKick(numParticles);
    for (int i = 0; i < numParticles; i++)
        halfKick[i] = 0.5 * dt / hmcMasses[i];
    vector<Vec3> f;
    context.calcForcesAndEnergy(true, false, groups);
    context.getForces(f);
    double potential = NAN;
    for (int step = 0; step < steps; step++) {
        for (int i = 0; i < numParticles; i++) {
            v[i] += f[i] * halfKick[i];
            x[i] += v[i] * dt;
        }
        context.setPositions(x);
        try {
            potential = context.calcForcesAndEnergy(true, true, groups);
        }
        catch (const OpenMMException&) {
            potential = NAN;
        }
        if (!isfinite(potential))
            break;
        context.getForces(f);
        for (int i = 0; i < numParticles; i++)
            v[i] += f[i] * halfKick[i];
    }
    return potential;
}

double CommonIntegrateTimewarpStepKernel::kineticEnergy(const vector<Vec3>& velocities, const vector<double>& particleMasses) {
    double energy = 0;
    for (int i = 0; i < (int) particleMasses.size(); i++)
        energy += 0.5 * particleMasses[i] * velocities[i].dot(velocities[i]);
    return energy;
}

void CommonIntegrateTimewarpStepKernel::discardPending() {
    // Pending proposals were drawn from the old state: they are no longer valid proposals.
    pending.clear();
    pendingLogRatios.clear();
    numPending = 0;
    nextProposal = 0;
}

void CommonIntegrateTimewarpStepKernel::resampleVelocities(ContextImpl& context, double temperature) {
    int numParticles = masses.size();
    vector<Vec3> velocities(numParticles);
    Vec3 momentum;
    double totalMass = 0;
    for (int i = 0; i < numParticles; i++) {
        double sigma = sqrt(BOLTZMANN * temperature / masses[i]);
        velocities[i] = Vec3(gaussian(), gaussian(), gaussian()) * sigma;
        momentum += velocities[i] * masses[i];
        totalMass += masses[i];
    }
    if (removeCenterOfMassMotion)
        for (Vec3& v : velocities)
            v -= momentum / totalMass;
    setVelocities(context, velocities);
}

double CommonIntegrateTimewarpStepKernel::computeKineticEnergy(ContextImpl& context, const TimewarpIntegrator& integrator) {
    vector<Vec3> velocities;
    getVelocities(context, velocities);
    return kineticEnergy(velocities, masses);
}

ProposalModel& CommonIntegrateTimewarpStepKernel::selectModel(const TimewarpIntegrator& integrator) {
    return integrator.getModel();
}

bool CommonIntegrateTimewarpStepKernel::readCurrentState(ContextImpl& context) {
    vector<Vec3> positions;
    context.getPositions(positions);
    if (!allFinite(positions))
        throw OpenMMException("TimewarpIntegrator: the positions in the Context contain NaN or infinite values");
    if (positions == current)
        return false;
    current.swap(positions);
    return true;
}

void CommonIntegrateTimewarpStepKernel::drawProposals(const TimewarpIntegrator& integrator, int numProposals) {
    model->propose(current, integrator.getAtomTypes(), numProposals, pending, pendingLogRatios);
}

bool CommonIntegrateTimewarpStepKernel::loadProposal(ContextImpl& context, int index) {
    if (!allFinite(pending[index]))
        return false;
    context.setPositions(pending[index]);
    return true;
}

bool CommonIntegrateTimewarpStepKernel::proposalPreservesChirality(const TimewarpIntegrator& integrator, int index) {
    const vector<Vec3>& y = pending[index];
    for (int i = 0; i < integrator.getNumChiralCenters(); i++) {
        int center, a, b, c;
        integrator.getChiralCenterParameters(i, center, a, b, c);
        if (tripleProduct(current, center, a, b, c) * tripleProduct(y, center, a, b, c) <= 0)
            return false;
    }
    return true;
}

void CommonIntegrateTimewarpStepKernel::acceptProposal(ContextImpl& context, int index) {
    current = pending[index];
}

void CommonIntegrateTimewarpStepKernel::restoreCurrentState(ContextImpl& context) {
    context.setPositions(current);
}

void CommonIntegrateTimewarpStepKernel::getChainPositions(vector<Vec3>& current, int numPending,
                                                          vector<vector<Vec3> >& pending) const {
    current = this->current;
    pending.assign(this->pending.begin(), this->pending.begin() + numPending);
}

void CommonIntegrateTimewarpStepKernel::setChainPositions(const vector<Vec3>& current, const vector<vector<Vec3> >& pending) {
    this->current = current;
    this->pending = pending;
}

void CommonIntegrateTimewarpStepKernel::getVelocities(ContextImpl& context, vector<Vec3>& velocities) {
    context.getVelocities(velocities);
}

void CommonIntegrateTimewarpStepKernel::setVelocities(ContextImpl& context, const vector<Vec3>& velocities) {
    context.setVelocities(velocities);
}

void CommonIntegrateTimewarpStepKernel::createCheckpoint(ContextImpl& context, ostream& stream) const {
    writeValue<int>(stream, CHECKPOINT_VERSION);
    stringstream randomState;
    randomState << random;
    writeString(stream, randomState.str());
    writeString(stream, model->getRandomState());
    writeValue(stream, numProposed);
    writeValue(stream, numAccepted);
    writeValue(stream, adaptProposed);
    writeValue(stream, adaptAccepted);
    writeValue(stream, numHMCProposed);
    writeValue(stream, numHMCAccepted);
    vector<Vec3> currentPositions;
    vector<vector<Vec3> > pendingPositions;
    getChainPositions(currentPositions, numPending, pendingPositions);
    writePositions(stream, currentPositions);
    writeValue<long long>(stream, numPending);
    for (const vector<Vec3>& proposal : pendingPositions)
        writePositions(stream, proposal);
    stream.write((const char*) pendingLogRatios.data(), numPending * sizeof(double));
    writeValue(stream, nextProposal);
}

void CommonIntegrateTimewarpStepKernel::loadCheckpoint(ContextImpl& context, istream& stream) {
    if (readValue<int>(stream) != CHECKPOINT_VERSION)
        throw OpenMMException("TimewarpIntegrator: the checkpoint was written by an incompatible version of the plugin");
    stringstream randomState(readString(stream));
    randomState >> random;
    model->setRandomState(readString(stream));
    numProposed = readValue<long long>(stream);
    numAccepted = readValue<long long>(stream);
    adaptProposed = readValue<long long>(stream);
    adaptAccepted = readValue<long long>(stream);
    numHMCProposed = readValue<long long>(stream);
    numHMCAccepted = readValue<long long>(stream);
    vector<Vec3> currentPositions = readPositions(stream);
    vector<vector<Vec3> > pendingPositions(readValue<long long>(stream));
    for (vector<Vec3>& proposal : pendingPositions)
        proposal = readPositions(stream);
    pendingLogRatios.resize(pendingPositions.size());
    stream.read((char*) pendingLogRatios.data(), pendingPositions.size() * sizeof(double));
    nextProposal = readValue<int>(stream);
    if (!stream)
        throw OpenMMException("TimewarpIntegrator: the checkpoint is truncated or corrupt");
    numPending = pendingPositions.size();
    setChainPositions(currentPositions, pendingPositions);
}
