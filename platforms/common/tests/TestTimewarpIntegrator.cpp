/*
 * C++ tests of TimewarpIntegrator, run once per platform: with the platform-independent kernel, or
 * with a platform's own kernel when its plugin library is given.
 *
 * Usage: TestTimewarpIntegrator MODEL.pt PLATFORM [PLUGIN]
 * PLUGIN (e.g. libOpenMMTimewarpCUDA.so) is loaded after the common kernel, replacing it on its platform.
 * Exit code 77 (ctest's skip) when PLATFORM cannot be loaded here, e.g. CUDA without a GPU.
 * MODEL.pt is the asymmetric Gaussian test proposal of tests/known_proposals.py for argon atoms (drift
 * 0.2 nm, width 0.4 nm, lag 100 ps, 300 K), written by `python tests/known_proposals.py MODEL.pt`, without
 * a settings entry.  MODEL.settings.pt beside it is the same proposal with a timewarp.json entry
 * recommending hmc_interval 3, hmc_steps 4, hmc_step_size_ps 0.002 and fast coordinate moves.
 */
#include "ModelSettings.h"
#include "ProposalModel.h"
#include "TimewarpIntegrator.h"
#include "openmm/Context.h"
#include "openmm/CustomExternalForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/serialization/XmlSerializer.h"
#include <cmath>
#include <cstdio>
#include <dlfcn.h>
#include <fstream>
#include <iostream>
#include <regex>
#include <memory>
#include <sstream>
#include <vector>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

extern "C" void registerKernelFactories();

#define ASSERT(cond) {if (!(cond)) throw runtime_error(string("assertion failed at line ") + to_string(__LINE__) + ": " #cond);}

static const double KT = 0.00831446261815324 * 300.0;
static string modelFile, settingsModelFile;
static Platform* platform;

/** One argon atom in a harmonic well whose Boltzmann distribution at 300 K has standard deviation sigma. */
static System* harmonicSystem(double sigma) {
    System* system = new System();
    system->addParticle(39.948);
    CustomExternalForce* force = new CustomExternalForce("0.5*k*(x^2+y^2+z^2)");
    force->addGlobalParameter("k", KT / (sigma * sigma));
    force->addParticle(0);
    system->addForce(force);
    return system;
}

static Vec3 position(Context& context) {
    return context.getState(State::Positions).getPositions()[0];
}

/** The chain's mean and variance of x match N(0, sigma^2) within 4.5 standard errors from batch means. */
static void checkHarmonicMoments(TimewarpIntegrator& integrator, Context& context, double sigma, int batches, int perBatch) {
    vector<double> means, squares;
    for (int b = 0; b < batches; b++) {
        double sum = 0, sum2 = 0;
        for (int i = 0; i < perBatch; i++) {
            integrator.step(1);
            double x = position(context)[0];
            sum += x;
            sum2 += x * x;
        }
        means.push_back(sum / perBatch);
        squares.push_back(sum2 / perBatch);
    }
    auto check = [&](const vector<double>& values, double expected) {
        double mean = 0, var = 0;
        for (double v : values)
            mean += v / values.size();
        for (double v : values)
            var += (v - mean) * (v - mean) / (values.size() - 1);
        double error = sqrt(var / values.size());
        ASSERT(fabs(mean - expected) < 4.5 * error);
    };
    check(means, 0.0);
    check(squares, sigma * sigma);
}

static void testHarmonicSampling() {
    const double sigma = 0.5;
    const int batches = 50, perBatch = 400;
    unique_ptr<System> system(harmonicSystem(sigma));
    TimewarpIntegrator integrator(modelFile, {"Ar"}, 300.0);
    integrator.setRandomNumberSeed(17);
    Context context(*system, integrator, *platform);
    context.setPositions({Vec3()});
    checkHarmonicMoments(integrator, context, sigma, batches, perBatch);
    ASSERT(integrator.getNumProposed() == batches * perBatch);
    ASSERT(integrator.getNumAccepted() > 0 && integrator.getNumAccepted() < integrator.getNumProposed());
}

/** Hybrid Monte Carlo moves, one after every second step, keep the chain exact and are counted. */
static void testHybridMonteCarlo() {
    const double sigma = 0.5;
    const int batches = 50, perBatch = 400;
    unique_ptr<System> system(harmonicSystem(sigma));
    TimewarpIntegrator integrator(modelFile, {"Ar"}, 300.0);
    integrator.setRandomNumberSeed(23);
    integrator.setHMCInterval(2);
    integrator.setHMCSteps(5);
    integrator.setHMCStepSize(1.5);  // omega dt = 0.75 in this well: large energy errors, often rejected
    Context context(*system, integrator, *platform);
    context.setPositions({Vec3()});
    checkHarmonicMoments(integrator, context, sigma, batches, perBatch);
    ASSERT(integrator.getNumHMCProposed() == batches * perBatch / 2);
    ASSERT(integrator.getNumHMCAccepted() > 0 && integrator.getNumHMCAccepted() < integrator.getNumHMCProposed());
}

/**
 * With a minimum mass of four argon masses, leapfrog at omega dt = 2.6 for argon's own mass (unstable:
 * every move would be rejected) runs at omega dt = 1.3: moves are accepted and the chain stays exact.
 */
static void testHybridMonteCarloMinimumMass() {
    const double sigma = 0.5, argon = 39.948;
    const int batches = 50, perBatch = 400;
    unique_ptr<System> system(harmonicSystem(sigma));
    TimewarpIntegrator integrator(modelFile, {"Ar"}, 300.0);
    integrator.setRandomNumberSeed(29);
    integrator.setHMCInterval(1);
    integrator.setHMCSteps(5);
    integrator.setHMCStepSize(2.6 / sqrt(KT / (sigma * sigma) / argon));
    integrator.setHMCMinimumMass(4 * argon);
    Context context(*system, integrator, *platform);
    context.setPositions({Vec3()});
    checkHarmonicMoments(integrator, context, sigma, batches, perBatch);
    double rate = integrator.getHMCAcceptanceRate();
    ASSERT(rate > 0.3 && rate < 0.97);
    integrator.setHMCMinimumMass(0);
    integrator.resetStatistics();
    integrator.step(200);
    ASSERT(integrator.getHMCAcceptanceRate() < 0.05);
}

/** A chain restarted from a checkpoint continues bit for bit. */
static void testCheckpoint() {
    unique_ptr<System> system(harmonicSystem(0.5));
    auto run = [&](stringstream* save, stringstream* load) {
        TimewarpIntegrator integrator(modelFile, {"Ar"}, 300.0);
        integrator.setRandomNumberSeed(load == NULL ? 5 : 6);
        integrator.setAdaptiveBatchSize(false);
        integrator.setProposalsPerBatch(40);
        Context context(*system, integrator, *platform);
        context.setPositions({Vec3()});
        if (load != NULL)
            context.loadCheckpoint(*load);
        else {
            integrator.step(25);
            context.createCheckpoint(*save);
        }
        integrator.step(100);
        return position(context);
    };
    stringstream checkpoint;
    Vec3 expected = run(&checkpoint, NULL);
    Vec3 restarted = run(NULL, &checkpoint);
    ASSERT(expected == restarted);
}

/** XmlSerializer round trip keeps every setting. */
static void testSerialization() {
    TimewarpIntegrator integrator(modelFile, {"Ar", "Ar"}, 310.0);
    integrator.setMetropolisHastings(false);
    integrator.setProposalsPerBatch(12);
    integrator.setAdaptiveBatchSize(false);
    integrator.setExplorationEnergyThreshold(123.0);
    integrator.setRandomNumberSeed(42);
    integrator.addChiralCenter(0, 1, 1, 1);
    integrator.setHMCInterval(3);
    integrator.setHMCSteps(4);
    integrator.setHMCStepSize(0.002);
    integrator.setHMCMinimumMass(4.0);
    stringstream xml;
    XmlSerializer::serialize<Integrator>(&integrator, "Integrator", xml);
    unique_ptr<Integrator> copy(XmlSerializer::deserialize<Integrator>(xml));
    TimewarpIntegrator& restored = dynamic_cast<TimewarpIntegrator&>(*copy);
    ASSERT(restored.getModelFile() == modelFile);
    ASSERT(restored.getElements() == integrator.getElements());
    ASSERT(restored.getTemperature() == 310.0 && !restored.getMetropolisHastings());
    ASSERT(restored.getProposalsPerBatch() == 12 && !restored.getAdaptiveBatchSize());
    ASSERT(restored.getExplorationEnergyThreshold() == 123.0 && restored.getRandomNumberSeed() == 42);
    ASSERT(restored.getNumChiralCenters() == 1);
    ASSERT(restored.getHMCInterval() == 3 && restored.getHMCSteps() == 4 && restored.getHMCStepSize() == 0.002);
    ASSERT(restored.getHMCMinimumMass() == 4.0);
    ASSERT(restored.getStepSize() == 100.0);
}

/** The position of one argon atom after some steps of a chain with a given seed. */
static Vec3 chainEnd(TimewarpIntegrator& integrator, int seed, int steps) {
    unique_ptr<System> system(harmonicSystem(0.5));
    integrator.setRandomNumberSeed(seed);
    Context context(*system, integrator, *platform);
    context.setPositions({Vec3()});
    integrator.step(steps);
    return position(context);
}

/** An integrator built from the file's bytes is the same chain as one built from the file. */
static void testFromBytes() {
    string data = ProposalModel::readFile(modelFile);
    TimewarpIntegrator fromFile(modelFile, {"Ar"}, 300.0);
    TimewarpIntegrator fromBytes(data, {"Ar"}, 300.0, "");
    ASSERT(fromBytes.getModelFile() == "" && fromBytes.getModelData() == data && fromFile.getModelData() == data);
    ASSERT(chainEnd(fromFile, 11, 60) == chainEnd(fromBytes, 11, 60));
}

/** The XML embeds the model: it deserializes and continues the same chain after the file is gone. */
static void testSelfContainedSerialization() {
    string copyFile = modelFile + "." + platform->getName() + ".copy.pt";
    {
        ofstream(copyFile, ios::binary) << ProposalModel::readFile(modelFile);
    }
    TimewarpIntegrator original(copyFile, {"Ar"}, 300.0);
    original.setHMCInterval(2);
    stringstream xml;
    XmlSerializer::serialize<Integrator>(&original, "Integrator", xml);
    ASSERT(remove(copyFile.c_str()) == 0);
    unique_ptr<Integrator> copy(XmlSerializer::deserialize<Integrator>(xml));
    TimewarpIntegrator& restored = dynamic_cast<TimewarpIntegrator&>(*copy);
    ASSERT(restored.getModelFile() == copyFile && restored.getModelData() == original.getModelData());
    ASSERT(restored.getHMCInterval() == 2);
    ASSERT(chainEnd(original, 8, 40) == chainEnd(restored, 8, 40));
}

/** Version-1 XML, which names the model file instead of embedding it, is still read. */
static void testVersion1Serialization() {
    TimewarpIntegrator integrator(modelFile, {"Ar"}, 300.0);
    integrator.setProposalsPerBatch(7);
    stringstream xml;
    XmlSerializer::serialize<Integrator>(&integrator, "Integrator", xml);
    string text = regex_replace(xml.str(), regex(" modelData=\"[^\"]*\""), "");
    ASSERT(text.size() < 2000 && text.find("version=\"2\"") != string::npos);
    text = regex_replace(text, regex("version=\"2\""), "version=\"1\"");
    stringstream old(text);
    unique_ptr<Integrator> copy(XmlSerializer::deserialize<Integrator>(old));
    TimewarpIntegrator& restored = dynamic_cast<TimewarpIntegrator&>(*copy);
    ASSERT(restored.getModelFile() == modelFile && restored.getProposalsPerBatch() == 7);
    ASSERT(restored.getModelData() == integrator.getModelData());
}

/** The model's timewarp.json entry sets the default hybrid Monte Carlo settings; a file without one recommends none. */
static void testModelSettings() {
    TimewarpIntegrator plain(modelFile, {"Ar"}, 300.0);
    ASSERT(plain.getHMCInterval() == 0 && plain.getHMCSteps() == 10 && plain.getHMCStepSize() == 0.001);
    ASSERT(plain.getHMCMinimumMass() == 0 && plain.getModelRecommendedHMCMinimumMass() == 0);
    ASSERT(!plain.getModelNeedsFastCoordinateMoves());
    TimewarpIntegrator recommended(settingsModelFile, {"Ar"}, 300.0);
    ASSERT(recommended.getHMCInterval() == 3 && recommended.getHMCSteps() == 4 && recommended.getHMCStepSize() == 0.002);
    ASSERT(recommended.getModelRecommendedHMCInterval() == 3 && recommended.getModelRecommendedHMCSteps() == 4);
    ASSERT(recommended.getModelRecommendedHMCStepSize() == 0.002 && recommended.getModelNeedsFastCoordinateMoves());
    recommended.setHMCInterval(0);
    ASSERT(recommended.getHMCInterval() == 0 && recommended.getModelRecommendedHMCInterval() == 3);
    ModelSettings parsed = ModelSettings::parse(
            "{\"other\": [1, {\"a\": null}], \"integrator\": {\"hmc_interval\": 2, \"hmc_step_size_ps\": 5e-4}, "
            "\"needs_fast_coordinate_moves\": false}", "m.pt");
    ASSERT(parsed.hmcInterval == 2 && parsed.hmcSteps == 10 && parsed.hmcStepSize == 5e-4 && !parsed.needsFastCoordinateMoves);
    ASSERT(parsed.hmcMinimumMass == 0);
    ASSERT(ModelSettings::parse("{\"integrator\": {\"hmc_minimum_mass_amu\": 4}}", "m.pt").hmcMinimumMass == 4.0);
    auto message = [](const string& json) -> string {
        try {
            ModelSettings::parse(json, "m.pt");
        }
        catch (const OpenMMException& e) {
            return e.what();
        }
        return "";
    };
    ASSERT(message("{\"integrator\": {\"hmc_interval\": 2").find("m.pt: its timewarp.json entry is not valid JSON") != string::npos);
    ASSERT(message("{\"integrator\": {\"hmc_interval\": 1.5}}").find("hmc_interval must be a non-negative integer") != string::npos);
    ASSERT(message("{\"integrator\": {\"hmc_steps\": \"4\"}}").find("hmc_steps must be a number") != string::npos);
    ASSERT(message("{\"needs_fast_coordinate_moves\": 1}").find("must be true or false") != string::npos);
    ASSERT(message("{\"integrator\": {\"hmc_minimum_mass_amu\": -1}}").find("hmc_minimum_mass_amu must be non-negative") != string::npos);
}

/** A platform without kernels of its own, standing in for CUDA, OpenCL or HIP, which cannot run here. */
class StandInPlatform : public Platform {
public:
    const string& getName() const {
        static const string name = "StandIn";
        return name;
    }
    double getSpeed() const {
        return 1.0;
    }
    bool supportsDoublePrecision() const {
        return true;
    }
};

/** The common kernel is registered with every platform loaded, not only Reference and CPU. */
static void testRegisteredOnEveryPlatform() {
    for (int i = 0; i < Platform::getNumPlatforms(); i++)
        ASSERT(Platform::getPlatform(i).supportsKernels({"IntegrateTimewarpStep"}));
    ASSERT(Platform::getPlatformByName("StandIn").supportsKernels({"IntegrateTimewarpStep"}));
}

/** Constraints and a wrong atom count are refused with errors naming them. */
static void testErrors() {
    unique_ptr<System> system(harmonicSystem(0.5));
    system->addParticle(39.948);
    system->addConstraint(0, 1, 0.3);
    auto message = [&](const vector<string>& elements) -> string {
        try {
            TimewarpIntegrator integrator(modelFile, elements, 300.0);
            Context context(*system, integrator, *platform);
        }
        catch (const OpenMMException& e) {
            return e.what();
        }
        return "";
    };
    ASSERT(message({"Ar", "Ar"}).find("constraints") != string::npos);
    ASSERT(message({"Ar"}).find("2 particles but 1 elements") != string::npos);
}

/**
 * A platform kernel that keeps positions on its device copies none to the host while it samples,
 * hybrid Monte Carlo included (the plugin's copy counter, which only checkpoints advance, stays put).
 */
static void testNoHostPositionCopies(long long (*copies)()) {
    unique_ptr<System> system(harmonicSystem(0.5));
    TimewarpIntegrator integrator(modelFile, {"Ar"}, 300.0);
    integrator.setRandomNumberSeed(5);
    integrator.setHMCInterval(2);
    Context context(*system, integrator, *platform);
    context.setPositions({Vec3()});
    integrator.step(1);
    long long before = copies();
    integrator.step(300);
    ASSERT(copies() == before);
    ASSERT(integrator.getNumHMCProposed() == 150);
    stringstream checkpoint;
    context.createCheckpoint(checkpoint);
    ASSERT(copies() > before);
}

int main(int argc, char* argv[]) {
    if (argc != 3 && argc != 4) {
        cerr << "usage: " << argv[0] << " MODEL.pt PLATFORM [PLUGIN] (MODEL.settings.pt must exist beside MODEL.pt)" << endl;
        return 2;
    }
    long long (*hostPositionCopies)() = NULL;
    try {
        modelFile = argv[1];
        settingsModelFile = modelFile.substr(0, modelFile.size() - 3) + ".settings.pt";
        Platform::loadPluginsFromDirectory(OPENMM_PLUGIN_DIR);
        Platform::registerPlatform(new StandInPlatform());
        registerKernelFactories();
        bool available = false;
        for (int i = 0; i < Platform::getNumPlatforms(); i++)
            available = available || Platform::getPlatform(i).getName() == argv[2];
        if (!available) {
            cout << "platform " << argv[2] << " is not available here; skipped. OpenMM's plugin load failures:" << endl;
            for (const string& failure : Platform::getPluginLoadFailures())
                cout << "  " << failure << endl;
            return 77;
        }
        if (argc == 4) {
            Platform::loadPluginLibrary(argv[3]);
            void* plugin = dlopen(argv[3], RTLD_LAZY | RTLD_NOLOAD);
            if (plugin != NULL)
                *(void**) &hostPositionCopies = dlsym(plugin, "timewarpCudaNumHostPositionCopies");
        }
        testRegisteredOnEveryPlatform();
        platform = &Platform::getPlatformByName(argv[2]);
        testHarmonicSampling();
        testHybridMonteCarlo();
        testHybridMonteCarloMinimumMass();
        testCheckpoint();
        testSerialization();
        testFromBytes();
        testSelfContainedSerialization();
        testVersion1Serialization();
        testModelSettings();
        testErrors();
        if (hostPositionCopies != NULL)
            testNoHostPositionCopies(hostPositionCopies);
    }
    catch (const exception& e) {
        cout << "exception: " << e.what() << endl;
        cout << "FAIL - ERROR.  Test failed." << endl;
        return 1;
    }
    cout << "Done" << endl;
    return 0;
}
