#include "TimewarpIntegratorProxy.h"
#include "TimewarpIntegrator.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <iterator>
#include <sstream>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

static const int VERSION = 1;

TimewarpIntegratorProxy::TimewarpIntegratorProxy() : SerializationProxy("TimewarpIntegrator") {
}

void TimewarpIntegratorProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", VERSION);
    const TimewarpIntegrator& integrator = *reinterpret_cast<const TimewarpIntegrator*>(object);
    string elements;
    for (const string& element : integrator.getElements())
        elements += (elements.empty() ? "" : " ") + element;
    node.setStringProperty("modelFile", integrator.getModelFile());
    node.setStringProperty("elements", elements);
    node.setDoubleProperty("temperature", integrator.getTemperature());
    node.setBoolProperty("metropolisHastings", integrator.getMetropolisHastings());
    node.setIntProperty("proposalsPerBatch", integrator.getProposalsPerBatch());
    node.setBoolProperty("adaptiveBatchSize", integrator.getAdaptiveBatchSize());
    node.setDoubleProperty("explorationEnergyThreshold", integrator.getExplorationEnergyThreshold());
    node.setIntProperty("randomSeed", integrator.getRandomNumberSeed());
    node.setIntProperty("hmcInterval", integrator.getHMCInterval());
    node.setIntProperty("hmcSteps", integrator.getHMCSteps());
    node.setDoubleProperty("hmcStepSize", integrator.getHMCStepSize());
    node.setIntProperty("integrationForceGroups", integrator.getIntegrationForceGroups());
    SerializationNode& centers = node.createChildNode("ChiralCenters");
    for (int i = 0; i < integrator.getNumChiralCenters(); i++) {
        int center, a, b, c;
        integrator.getChiralCenterParameters(i, center, a, b, c);
        centers.createChildNode("Center").setIntProperty("center", center).setIntProperty("a", a).setIntProperty("b", b).setIntProperty("c", c);
    }
}

void* TimewarpIntegratorProxy::deserialize(const SerializationNode& node) const {
    if (node.getIntProperty("version") != VERSION)
        throw OpenMMException("TimewarpIntegratorProxy: unsupported version number");
    istringstream words(node.getStringProperty("elements"));
    vector<string> elements((istream_iterator<string>(words)), istream_iterator<string>());
    TimewarpIntegrator* integrator = new TimewarpIntegrator(node.getStringProperty("modelFile"), elements, node.getDoubleProperty("temperature"));
    try {
        integrator->setMetropolisHastings(node.getBoolProperty("metropolisHastings"));
        integrator->setProposalsPerBatch(node.getIntProperty("proposalsPerBatch"));
        integrator->setAdaptiveBatchSize(node.getBoolProperty("adaptiveBatchSize"));
        integrator->setExplorationEnergyThreshold(node.getDoubleProperty("explorationEnergyThreshold"));
        integrator->setRandomNumberSeed(node.getIntProperty("randomSeed"));
        // Files written before hybrid Monte Carlo existed have none.
        integrator->setHMCInterval(node.getIntProperty("hmcInterval", 0));
        integrator->setHMCSteps(node.getIntProperty("hmcSteps", 10));
        integrator->setHMCStepSize(node.getDoubleProperty("hmcStepSize", 0.001));
        integrator->setIntegrationForceGroups(node.getIntProperty("integrationForceGroups"));
        for (const SerializationNode& center : node.getChildNode("ChiralCenters").getChildren())
            integrator->addChiralCenter(center.getIntProperty("center"), center.getIntProperty("a"), center.getIntProperty("b"), center.getIntProperty("c"));
    }
    catch (...) {
        delete integrator;
        throw;
    }
    return integrator;
}
