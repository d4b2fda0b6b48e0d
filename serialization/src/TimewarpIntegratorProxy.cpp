#include "TimewarpIntegratorProxy.h"
#include "internal/Base64.h"
#include "TimewarpIntegrator.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <algorithm>
#include <iterator>
#include <sstream>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

// Version 2 embeds the model's bytes; version 1 referred to the model file by path.
static const int VERSION = 2;

TimewarpIntegratorProxy::TimewarpIntegratorProxy() : SerializationProxy("TimewarpIntegrator") {
}

void TimewarpIntegratorProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", VERSION);
    const TimewarpIntegrator& integrator = *reinterpret_cast<const TimewarpIntegrator*>(object);
    string elements;
    for (const string& element : integrator.getElements())
        elements += (elements.empty() ? "" : " ") + element;
    node.setStringProperty("modelFile", integrator.getModelFile());
    node.setStringProperty("modelData", encodeBase64(integrator.getModelData()));
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
    node.setDoubleProperty("hmcMinimumMass", integrator.getHMCMinimumMass());
    node.setIntProperty("integrationForceGroups", integrator.getIntegrationForceGroups());
    SerializationNode& centers = node.createChildNode("ChiralCenters");
    for (int i = 0; i < integrator.getNumChiralCenters(); i++) {
        int center, a, b, c;
        integrator.getChiralCenterParameters(i, center, a, b, c);
        centers.createChildNode("Center").setIntProperty("center", center).setIntProperty("a", a).setIntProperty("b", b).setIntProperty("c", c);
    }
}

void* TimewarpIntegratorProxy::deserialize(const SerializationNode& node) const {
    int version = node.getIntProperty("version");
    if (version < 1 || version > VERSION)
        throw OpenMMException("TimewarpIntegrator: unsupported XML version number " + to_string(version));
    istringstream words(node.getStringProperty("elements"));
    vector<string> elements((istream_iterator<string>(words)), istream_iterator<string>());
    string modelFile = node.getStringProperty("modelFile");
    double temperature = node.getDoubleProperty("temperature");
    TimewarpIntegrator* integrator;
    if (version == 1)
        integrator = new TimewarpIntegrator(modelFile, elements, temperature);
    else
        integrator = new TimewarpIntegrator(decodeBase64(node.getStringProperty("modelData"), "the model data embedded in the XML"), elements, temperature, modelFile);
    try {
        // Every setting is restored explicitly, so the model's recommendations never override the file.
        integrator->setMetropolisHastings(node.getBoolProperty("metropolisHastings"));
        integrator->setProposalsPerBatch(node.getIntProperty("proposalsPerBatch"));
        integrator->setAdaptiveBatchSize(node.getBoolProperty("adaptiveBatchSize"));
        integrator->setExplorationEnergyThreshold(node.getDoubleProperty("explorationEnergyThreshold"));
        integrator->setRandomNumberSeed(node.getIntProperty("randomSeed"));
        // Files written before hybrid Monte Carlo existed have none.
        integrator->setHMCInterval(node.getIntProperty("hmcInterval", 0));
        integrator->setHMCSteps(node.getIntProperty("hmcSteps", 10));
        integrator->setHMCStepSize(node.getDoubleProperty("hmcStepSize", 0.001));
        integrator->setHMCMinimumMass(node.getDoubleProperty("hmcMinimumMass", 0.0));
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
