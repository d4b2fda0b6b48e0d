/*
 * C++ tests of TimewarpIntegrator on the Reference and CPU platforms.
 *
 * Usage: TestReferenceTimewarpIntegrator MODEL.pt PLATFORM
 * MODEL.pt is the asymmetric Gaussian test proposal of tests/proposals.py for argon atoms (drift
 * 0.2 nm, width 0.4 nm, lag 100 ps, 300 K), written by `python tests/proposals.py MODEL.pt`.
 */
#include "TimewarpIntegrator.h"
#include "openmm/Context.h"
#include "openmm/CustomExternalForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/serialization/XmlSerializer.h"
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>
#include <vector>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

extern "C" void registerKernelFactories();

#define ASSERT(cond) {if (!(cond)) throw runtime_error(string("assertion failed at line ") + to_string(__LINE__) + ": " #cond);}

static const double KT = 0.00831446261815324 * 300.0;
static string modelFile;
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
    ASSERT(restored.getStepSize() == 100.0);
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

int main(int argc, char* argv[]) {
    if (argc != 3) {
        cerr << "usage: " << argv[0] << " MODEL.pt PLATFORM" << endl;
        return 2;
    }
    try {
        modelFile = argv[1];
        Platform::loadPluginsFromDirectory(OPENMM_PLUGIN_DIR);
        registerKernelFactories();
        platform = &Platform::getPlatformByName(argv[2]);
        testHarmonicSampling();
        testHybridMonteCarlo();
        testCheckpoint();
        testSerialization();
        testErrors();
    }
    catch (const exception& e) {
        cout << "exception: " << e.what() << endl;
        cout << "FAIL - ERROR.  Test failed." << endl;
        return 1;
    }
    cout << "Done" << endl;
    return 0;
}
