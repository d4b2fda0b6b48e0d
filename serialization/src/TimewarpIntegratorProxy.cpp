#include "TimewarpIntegratorProxy.h"
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

namespace {

const char BASE64_DIGITS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Standard base64 (RFC 4648) with padding, so the bytes survive as XML attribute text. */
string encodeBase64(const string& data) {
    string text;
    text.reserve(4 * ((data.size() + 2) / 3));
    for (size_t i = 0; i < data.size(); i += 3) {
        size_t n = min<size_t>(3, data.size() - i);
        unsigned int group = 0;
        for (size_t j = 0; j < 3; j++)
            group = (group << 8) | (j < n ? (unsigned char) data[i + j] : 0);
        for (size_t j = 0; j < 4; j++)
            text += (j <= n ? BASE64_DIGITS[(group >> (18 - 6 * j)) & 63] : '=');
    }
    return text;
}

string decodeBase64(const string& text) {
    int values[256];
    fill(values, values + 256, -1);
    for (int i = 0; i < 64; i++)
        values[(unsigned char) BASE64_DIGITS[i]] = i;
    size_t length = text.size();
    while (length > 0 && text[length - 1] == '=' && text.size() - length < 2)
        length--;
    if (text.size() % 4 != 0 || length % 4 == 1)
        throw OpenMMException("TimewarpIntegrator: the model data embedded in the XML is not valid base64");
    string data;
    data.reserve(3 * length / 4);
    unsigned int group = 0;
    int bits = 0;
    for (size_t i = 0; i < length; i++) {
        int value = values[(unsigned char) text[i]];
        if (value < 0)
            throw OpenMMException("TimewarpIntegrator: the model data embedded in the XML is not valid base64");
        group = (group << 6) | value;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            data += (char) ((group >> bits) & 255);
        }
    }
    return data;
}

} // namespace

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
        integrator = new TimewarpIntegrator(decodeBase64(node.getStringProperty("modelData")), elements, temperature, modelFile);
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
