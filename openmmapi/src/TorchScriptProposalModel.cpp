#include "TorchScriptProposalModel.h"
#include "ModelLoading.h"
#include "openmm/OpenMMException.h"
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <cstring>
#include <sstream>
#include <mutex>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

// The default generators are process-wide: serialize the swaps between models.
static mutex generatorMutex;

/** The default generator of a device type, from which a TorchScript module on that device draws. */
static at::Generator defaultGenerator(const torch::Device& device) {
    return device.is_cpu() ? at::detail::getDefaultCPUGenerator() : at::globalContext().defaultGenerator(device);
}

/** Runs a function with a device's default generator holding a given state, then stores the new state back. */
template <class F>
static void withGeneratorState(const torch::Device& device, at::Tensor& state, F function) {
    lock_guard<mutex> lock(generatorMutex);
    at::Generator generator = defaultGenerator(device);
    at::Tensor saved = generator.get_state();
    generator.set_state(state);
    try {
        function();
    }
    catch (...) {
        generator.set_state(saved);
        throw;
    }
    state = generator.get_state();
    generator.set_state(saved);
}

TorchScriptProposalModel::TorchScriptProposalModel(const string& data, const string& file, const string& deviceName) :
        file(file), device(parseModelDevice(deviceName, file)) {
    torch::jit::ExtraFilesMap extraFiles{{ModelSettings::entryName(), ""}};
    try {
        istringstream stream(data);
        module = torch::jit::load(stream, device, extraFiles);
    }
    catch (const exception& e) {
        failModel(file, string("is not a readable TorchScript file (corrupt, or saved by an incompatible torch): ") + e.what());
    }
    module.eval();
    readModelFacts(module, file, CONTRACT_VERSION, "TorchScript file", elements, lagTime, temperature, density);
    settings = ModelSettings::parse(extraFiles[ModelSettings::entryName()], file);
    setRandomSeed(0);
}

string TorchScriptProposalModel::getDevice() const {
    return device.str();
}

void TorchScriptProposalModel::proposeTensors(const at::Tensor& x, const at::Tensor& types, int numProposals,
                                              at::Tensor& y, at::Tensor& logRatio) {
    withGeneratorState(device, generatorState, [&]() {
        c10::InferenceMode guard;
        // The profiling executor's first two calls of a model profile and optimize its graph, about
        // 2 s for the shipped models on a CPU, after which they ran no faster (measured on a
        // dipeptide: 9 ms per call of 64 proposals optimized, 6 ms not): skip it.
        torch::jit::GraphOptimizerEnabledGuard noOptimization(false);
        c10::IValue output;
        try {
            output = module.forward({x, types, (int64_t) numProposals});
        }
        catch (const exception& e) {
            failModel(file, string("forward() failed: ") + e.what());
        }
        if (!output.isTuple() || output.toTupleRef().elements().size() != 2)
            failModel(file, "forward() must return a tuple (proposals, log_ratio)");
        y = output.toTupleRef().elements()[0].toTensor().to(torch::kFloat64).contiguous();
        logRatio = output.toTupleRef().elements()[1].toTensor().to(torch::kFloat64).contiguous();
    });
    checkProposalShapes(file, x.size(0), numProposals, y, logRatio);
    clearUpperVectorState();
}

void TorchScriptProposalModel::setRandomSeed(uint64_t seed) {
    lock_guard<mutex> lock(generatorMutex);
    at::Generator fresh;
    if (device.is_cpu())
        fresh = at::make_generator<at::CPUGeneratorImpl>(seed);
    else {
        fresh = defaultGenerator(device).clone();
        fresh.set_current_seed(seed);
    }
    generatorState = fresh.get_state();
}

string TorchScriptProposalModel::getRandomState() const {
    return string((const char*) generatorState.data_ptr<uint8_t>(), generatorState.numel());
}

void TorchScriptProposalModel::setRandomState(const string& state) {
    if (state.size() != (size_t) generatorState.numel())
        throw OpenMMException("TimewarpIntegrator: the checkpoint's random state of the model does not fit this torch version");
    memcpy(generatorState.data_ptr<uint8_t>(), state.data(), state.size());
}
