#include "TimewarpIntegrator.h"
#include "ProposalModel.h"
#include "TimewarpKernels.h"
#include "openmm/Context.h"
#include "openmm/CustomGBForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include <algorithm>
#include <cmath>
#include <sstream>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

static void fail(const string& message) {
    throw OpenMMException("TimewarpIntegrator: " + message);
}

TimewarpIntegrator::TimewarpIntegrator(const string& modelFile, const vector<string>& elements, double temperature) :
        TimewarpIntegrator(ProposalModel::readFile(modelFile), elements, temperature, modelFile) {
}

TimewarpIntegrator::TimewarpIntegrator(const string& modelData, const vector<string>& elements, double temperature,
                                       const string& modelFile) :
        modelFile(modelFile), modelData(modelData), elements(elements), explorationThreshold(300.0), metropolisHastings(true),
        adaptiveBatchSize(true), systemHasCustomGB(false), proposalsPerBatch(256), randomNumberSeed(0) {
    setTemperature(temperature);
    loadModel();
}

string TimewarpIntegrator::modelSource() const {
    return modelFile.empty() ? "<model bytes>" : modelFile;
}

void TimewarpIntegrator::loadModel() {
    model = ProposalModel::loadFromBytes(modelData, modelSource());
    const vector<string>& known = model->getElements();
    for (int i = 0; i < (int) elements.size(); i++) {
        auto found = find(known.begin(), known.end(), elements[i]);
        if (found == known.end()) {
            stringstream message;
            message << "particle " << i << " is element '" << elements[i] << "', which the model " << modelSource() << " does not know (it knows:";
            for (const string& e : known)
                message << " " << e;
            message << ")";
            fail(message.str());
        }
        atomTypes.push_back(found - known.begin());
    }
    setStepSize(model->getLagTime());
    const ModelSettings& recommended = model->getSettings();
    hmcInterval = recommended.hmcInterval;
    hmcSteps = recommended.hmcSteps;
    hmcStepSize = recommended.hmcStepSize;
    hmcMinimumMass = recommended.hmcMinimumMass;
}

TimewarpIntegrator::~TimewarpIntegrator() {
}

void TimewarpIntegrator::setTemperature(double temperature) {
    if (!(temperature > 0) || !isfinite(temperature))
        fail("the temperature must be positive and finite");
    this->temperature = temperature;
}

void TimewarpIntegrator::setMetropolisHastings(bool enabled) {
    if (enabled && !model->hasDensity())
        fail("the model " + modelSource() + " has no tractable density, so it can only be used in exploration mode (Metropolis-Hastings off)");
    metropolisHastings = enabled;
}

void TimewarpIntegrator::setProposalsPerBatch(int proposals) {
    if (proposals < 1)
        fail("the number of proposals per batch must be at least 1");
    proposalsPerBatch = proposals;
}

void TimewarpIntegrator::setAdaptiveBatchSize(bool adaptive) {
    adaptiveBatchSize = adaptive;
}

void TimewarpIntegrator::setExplorationEnergyThreshold(double threshold) {
    if (!(threshold > 0))
        fail("the exploration energy threshold must be positive");
    explorationThreshold = threshold;
}

void TimewarpIntegrator::setHMCInterval(int interval) {
    if (interval < 0)
        fail("the hybrid Monte Carlo interval must be 0 (none) or positive");
    hmcInterval = interval;
}

void TimewarpIntegrator::setHMCSteps(int steps) {
    if (steps < 1)
        fail("a hybrid Monte Carlo move needs at least one velocity Verlet step");
    hmcSteps = steps;
}

void TimewarpIntegrator::setHMCStepSize(double stepSize) {
    if (!(stepSize > 0) || !isfinite(stepSize))
        fail("the hybrid Monte Carlo step size must be positive and finite");
    hmcStepSize = stepSize;
}

void TimewarpIntegrator::setHMCMinimumMass(double mass) {
    if (!(mass >= 0) || !isfinite(mass))
        fail("the smallest hybrid Monte Carlo mass must be 0 (the System's masses) or positive and finite");
    hmcMinimumMass = mass;
}

int TimewarpIntegrator::addChiralCenter(int center, int atom1, int atom2, int atom3) {
    int atoms[] = {center, atom1, atom2, atom3};
    for (int atom : atoms)
        if (atom < 0 || atom >= (int) elements.size())
            fail("chiral centre atom index " + to_string(atom) + " is out of range");
    chiralCenters.insert(chiralCenters.end(), atoms, atoms + 4);
    return getNumChiralCenters() - 1;
}

void TimewarpIntegrator::getChiralCenterParameters(int index, int& center, int& atom1, int& atom2, int& atom3) const {
    if (index < 0 || index >= getNumChiralCenters())
        fail("chiral centre index " + to_string(index) + " is out of range");
    center = chiralCenters[4 * index];
    atom1 = chiralCenters[4 * index + 1];
    atom2 = chiralCenters[4 * index + 2];
    atom3 = chiralCenters[4 * index + 3];
}

void TimewarpIntegrator::setRandomNumberSeed(int seed) {
    randomNumberSeed = seed;
}

long long TimewarpIntegrator::getNumProposed() const {
    return context == NULL ? 0 : kernel.getAs<IntegrateTimewarpStepKernel>().getNumProposed();
}

long long TimewarpIntegrator::getNumAccepted() const {
    return context == NULL ? 0 : kernel.getAs<IntegrateTimewarpStepKernel>().getNumAccepted();
}

double TimewarpIntegrator::getAcceptanceRate() const {
    long long proposed = getNumProposed();
    return proposed == 0 ? 0.0 : getNumAccepted() / (double) proposed;
}

long long TimewarpIntegrator::getNumHMCProposed() const {
    return context == NULL ? 0 : kernel.getAs<IntegrateTimewarpStepKernel>().getNumHMCProposed();
}

long long TimewarpIntegrator::getNumHMCAccepted() const {
    return context == NULL ? 0 : kernel.getAs<IntegrateTimewarpStepKernel>().getNumHMCAccepted();
}

double TimewarpIntegrator::getHMCAcceptanceRate() const {
    long long proposed = getNumHMCProposed();
    return proposed == 0 ? 0.0 : getNumHMCAccepted() / (double) proposed;
}

void TimewarpIntegrator::resetStatistics() {
    if (context != NULL)
        kernel.getAs<IntegrateTimewarpStepKernel>().resetStatistics();
}

double TimewarpIntegrator::getModelLagTime() const {
    return model->getLagTime();
}

double TimewarpIntegrator::getModelTemperature() const {
    return model->getTemperature();
}

bool TimewarpIntegrator::getModelHasDensity() const {
    return model->hasDensity();
}

const vector<string>& TimewarpIntegrator::getModelElements() const {
    return model->getElements();
}

int TimewarpIntegrator::getModelRecommendedHMCInterval() const {
    return model->getSettings().hmcInterval;
}

int TimewarpIntegrator::getModelRecommendedHMCSteps() const {
    return model->getSettings().hmcSteps;
}

double TimewarpIntegrator::getModelRecommendedHMCStepSize() const {
    return model->getSettings().hmcStepSize;
}

double TimewarpIntegrator::getModelRecommendedHMCMinimumMass() const {
    return model->getSettings().hmcMinimumMass;
}

bool TimewarpIntegrator::getModelNeedsFastCoordinateMoves() const {
    return model->getSettings().needsFastCoordinateMoves;
}

void TimewarpIntegrator::initialize(ContextImpl& contextRef) {
    if (owner != NULL && &contextRef.getOwner() != owner)
        fail("this Integrator is already bound to a context");
    const System& system = contextRef.getSystem();
    if (system.getNumParticles() != (int) elements.size())
        fail("the System has " + to_string(system.getNumParticles()) + " particles but " + to_string(elements.size()) +
             " elements were given");
    if (system.usesPeriodicBoundaryConditions())
        fail("the System is periodic; learned proposals support only non-periodic (implicit-solvent or vacuum) systems");
    if (system.getNumConstraints() > 0)
        fail("the System has " + to_string(system.getNumConstraints()) +
             " constraints; the model moves every atom, so build the System with constraints=None");
    for (int i = 0; i < system.getNumParticles(); i++) {
        if (system.isVirtualSite(i))
            fail("particle " + to_string(i) + " is a virtual site; systems with virtual sites are not supported");
        if (system.getParticleMass(i) <= 0)
            fail("particle " + to_string(i) + " has no mass; massless particles are not supported");
    }
    systemHasCustomGB = false;
    for (int i = 0; i < system.getNumForces(); i++)
        if (dynamic_cast<const CustomGBForce*>(&system.getForce(i)) != NULL)
            systemHasCustomGB = true;
    if (metropolisHastings && !model->hasDensity())
        fail("the model " + modelSource() + " has no tractable density, so it can only be used in exploration mode (Metropolis-Hastings off)");
    context = &contextRef;
    owner = &contextRef.getOwner();
    kernel = context->getPlatform().createKernel(IntegrateTimewarpStepKernel::Name(), contextRef);
    kernel.getAs<IntegrateTimewarpStepKernel>().initialize(system, *this);
}

void TimewarpIntegrator::cleanup() {
    kernel = Kernel();
}

vector<string> TimewarpIntegrator::getKernelNames() {
    return {IntegrateTimewarpStepKernel::Name()};
}

double TimewarpIntegrator::computeKineticEnergy() {
    return kernel.getAs<IntegrateTimewarpStepKernel>().computeKineticEnergy(*context, *this);
}

void TimewarpIntegrator::step(int steps) {
    if (context == NULL)
        fail("this Integrator is not bound to a context");
    if (steps > 0)
        kernel.getAs<IntegrateTimewarpStepKernel>().execute(*context, *this, steps);
}

void TimewarpIntegrator::createCheckpoint(ostream& stream) const {
    kernel.getAs<IntegrateTimewarpStepKernel>().createCheckpoint(*context, stream);
}

void TimewarpIntegrator::loadCheckpoint(istream& stream) {
    kernel.getAs<IntegrateTimewarpStepKernel>().loadCheckpoint(*context, stream);
}
