#include "CompiledProposalModel.h"
#include "ModelLoading.h"
#include "internal/Base64.h"
#include <ATen/CPUGeneratorImpl.h>
#include <caffe2/serialize/inline_container.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

static const char SETTINGS_RECORD[] = "extra/timewarp.json";
static const char TOPOLOGY_RECORD[] = "extra/topology.pt";
static const char PROGRAM_PREFIX[] = "data/aotinductor/";

/** An archive entry as a string. */
static string readRecord(caffe2::serialize::PyTorchStreamReader& reader, const string& name) {
    auto record = reader.getRecord(name);
    return string((const char*) get<0>(record).get(), get<1>(record));
}

bool CompiledProposalModel::isCompiledModel(const string& data) {
    try {
        istringstream stream(data);
        caffe2::serialize::PyTorchStreamReader reader(&stream);
        if (!reader.hasRecord(SETTINGS_RECORD) || !reader.hasRecord(TOPOLOGY_RECORD))
            return false;
        for (const string& name : reader.getAllRecords())
            if (name.rfind(PROGRAM_PREFIX, 0) == 0)
                return true;
    }
    catch (const exception&) {
        // Not a zip archive at all: the TorchScript loader gives the error.
    }
    return false;
}

CompiledProposalModel::CompiledProposalModel(const string& data, const string& file, const string& deviceName) :
        file(file), device(parseModelDevice(deviceName, file)) {
    string topologyData;
    try {
        istringstream stream(data);
        caffe2::serialize::PyTorchStreamReader reader(&stream);
        settings = ModelSettings::parse(readRecord(reader, SETTINGS_RECORD), file);
        topologyData = decodeBase64(readRecord(reader, TOPOLOGY_RECORD), "the topology module of model file " + file);
    }
    catch (const OpenMMException&) {
        throw;
    }
    catch (const exception& e) {
        failModel(file, string("is not a readable contract-version-2 archive: ") + e.what());
    }
    try {
        istringstream stream(topologyData);
        topologyModule = torch::jit::load(stream, device);
    }
    catch (const exception& e) {
        failModel(file, string("its topology module is not readable TorchScript: ") + e.what());
    }
    topologyModule.eval();
    readModelFacts(topologyModule, file, COMPILED_CONTRACT_VERSION, "compiled archive", elements, lagTime, temperature,
                   density);
    auto call = [&](const string& name) {
        return callModelMethod(topologyModule, name, file);
    };
    vector<string> names;
    for (const c10::IValue& name : call("kernel_programs").toListRef())
        names.push_back(name.toStringRef());
    for (const c10::IValue& weight : call("kernel_weights").toListRef())
        weights.push_back(weight.toDouble());
    for (const c10::IValue& counts : call("noise_counts").toListRef()) {
        numNormals.push_back(counts.toListRef()[0].toInt());
        numUniforms.push_back(counts.toListRef()[1].toInt());
    }
    if (names.empty() || weights.size() != names.size() || numNormals.size() != names.size())
        failModel(file, "lists no kernels, or a different number of programs, weights and noise sizes");

    // The package loader reads a path: the bytes go to a private temporary file for the time it
    // takes to load them (the loader unpacks what it needs into its own folder).
    const char* tmp = getenv("TMPDIR");
    string pattern = string(tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp") + "/timewarp-model-XXXXXX.pt2";
    vector<char> path(pattern.begin(), pattern.end());
    path.push_back('\0');
    int fd = mkstemps(path.data(), 4);
    if (fd < 0)
        failModel(file, "cannot write a temporary copy to load it (" + pattern + ")");
    {
        ofstream out(path.data(), ios::binary);
        out.write(data.data(), data.size());
        if (!out)
            failModel(file, "cannot write a temporary copy to load it (" + string(path.data()) + ")");
    }
    close(fd);
    try {
        // A program runs on the device type it was compiled for (AOTInductor records it).
        for (const string& name : names) {
            auto metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path.data(), name);
            string compiledFor = metadata.count("AOTI_DEVICE_KEY") ? metadata["AOTI_DEVICE_KEY"] : "cpu";
            if (compiledFor != c10::DeviceTypeName(device.type(), true))
                throw OpenMMException("TimewarpIntegrator: model file " + file + ": its programs were compiled for " +
                                      compiledFor + ", not for " + device.str() + "; use the TorchScript (.pt) file " +
                                      "it was compiled from, or compile one for this device");
        }
        for (const string& name : names)
            programs.push_back(unique_ptr<torch::inductor::AOTIModelPackageLoader>(new torch::inductor::AOTIModelPackageLoader(
                    path.data(), name, false, 1, device.is_cpu() ? -1 : device.index())));
    }
    catch (const OpenMMException&) {
        unlink(path.data());
        throw;
    }
    catch (const exception& e) {
        unlink(path.data());
        failModel(file, string("its compiled programs cannot be loaded (compiled for another torch, device or CPU?): ") +
                  e.what());
    }
    unlink(path.data());
    clearUpperVectorState();
    setRandomSeed(0);
}

string CompiledProposalModel::getDevice() const {
    return device.str();
}

void CompiledProposalModel::findTopology(const at::Tensor& positions, const at::Tensor& atomTypes) {
    c10::IValue output;
    try {
        output = topologyModule.forward({positions, atomTypes});
    }
    catch (const exception& e) {
        failModel(file, string("finding the molecule's topology failed: ") + e.what());
    }
    topology.clear();
    for (const c10::IValue& kernel : output.toListRef()) {
        vector<at::Tensor> tensors;
        for (const c10::IValue& t : kernel.toListRef())
            tensors.push_back(t.toTensor());
        topology.push_back(tensors);
    }
    if (topology.size() != programs.size())
        failModel(file, "its topology module returned " + to_string(topology.size()) + " kernels' topologies, expected " +
                  to_string(programs.size()));
    topologyTypes = atomTypes.clone();
    available.clear();
    for (const vector<at::Tensor>& kernel : topology)
        available.push_back(kernel[0].item<bool>());
}

vector<at::Tensor> CompiledProposalModel::runProgram(int kernel, const at::Tensor& positions, const at::Tensor& atomTypes,
                                                     const at::Tensor& normals, const at::Tensor& uniforms) {
    auto call = [&]() {
        vector<at::Tensor> inputs = {positions, atomTypes, normals, uniforms};
        inputs.insert(inputs.end(), topology[kernel].begin() + 1, topology[kernel].end());
        vector<at::Tensor> outputs;
        try {
            outputs = programs[kernel]->run(inputs);
        }
        catch (const exception& e) {
            failModel(file, "kernel " + to_string(kernel) + "'s program failed: " + e.what());
        }
        if (outputs.size() != 3)
            failModel(file, "kernel " + to_string(kernel) + "'s program must return (proposals, log_ratio, same_topology)");
        return outputs;
    };
    vector<at::Tensor> outputs = call();
    if (!outputs[2].item<bool>()) {
        // The bond graph is not the one the topology was found for (a user moved the atoms): find
        // it again for these positions, which the program then accepts.
        findTopology(positions, atomTypes);
        outputs = call();
    }
    return outputs;
}

void CompiledProposalModel::proposeTensors(const at::Tensor& positionsIn, const at::Tensor& atomTypes, int numProposals,
                                           at::Tensor& y, at::Tensor& logRatio) {
    c10::InferenceMode guard;
    at::Tensor x = positionsIn.to(torch::kFloat64).contiguous();
    if (topology.empty() || !topologyTypes.sizes().equals(atomTypes.sizes()) || !topologyTypes.equal(atomTypes))
        findTopology(x, atomTypes);
    int numKernels = programs.size();
    torch::TensorOptions options = torch::TensorOptions().dtype(torch::kFloat64).device(device);
    if (numKernels == 1) {
        // One kernel: no choice to draw, no rows to assemble (the contract draws the choices only
        // for a model of several kernels).
        if (!available[0])
            failModel(file, "its kernel cannot move this molecule");
        at::Tensor normals = at::randn({numProposals, numNormals[0]}, generator, options);
        at::Tensor uniforms = at::rand({numProposals, numUniforms[0]}, generator, options);
        vector<at::Tensor> out = runProgram(0, x, atomTypes, normals, uniforms);
        y = out[0].to(torch::kFloat64).contiguous();
        logRatio = out[1].to(torch::kFloat64).contiguous();
        checkProposalShapes(file, x.size(0), numProposals, y, logRatio);
        clearUpperVectorState();
        return;
    }
    vector<double> usable(numKernels);
    double total = 0, count = 0;
    for (int k = 0; k < numKernels; k++) {
        usable[k] = available[k] ? weights[k] : 0.0;
        total += usable[k];
        count += available[k] ? 1 : 0;
    }
    if (count == 0)
        failModel(file, "no kernel of the model can move this molecule");
    // As a mixture does: kernels that can move the molecule share the weight of those that cannot.
    for (int k = 0; k < numKernels; k++)
        usable[k] = (total > 0 ? usable[k] / total : (available[k] ? 1.0 / count : 0.0));
    at::Tensor choice = at::rand({numProposals}, generator, options);
    at::Tensor kernelOf = at::zeros({numProposals}, torch::TensorOptions().dtype(torch::kInt64).device(device));
    double bound = 0;
    for (int k = 0; k < numKernels - 1; k++) {
        bound += usable[k];
        kernelOf += (choice >= bound).to(torch::kInt64);
    }
    y = x.unsqueeze(0).repeat({numProposals, 1, 1});
    logRatio = at::zeros({numProposals}, options);
    for (int k = 0; k < numKernels; k++) {
        at::Tensor rows = at::nonzero(kernelOf == k).flatten();
        int64_t n = rows.numel();
        if (n == 0)
            continue;
        at::Tensor normals = at::randn({n, numNormals[k]}, generator, options);
        at::Tensor uniforms = at::rand({n, numUniforms[k]}, generator, options);
        vector<at::Tensor> out = runProgram(k, x, atomTypes, normals, uniforms);
        y.index_copy_(0, rows, out[0].to(torch::kFloat64));
        logRatio.index_copy_(0, rows, out[1].to(torch::kFloat64));
    }
    y = y.contiguous();
    logRatio = logRatio.contiguous();
    checkProposalShapes(file, x.size(0), numProposals, y, logRatio);
    clearUpperVectorState();
}

void CompiledProposalModel::setRandomSeed(uint64_t seed) {
    if (device.is_cpu())
        generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    else {
        generator = at::globalContext().defaultGenerator(device).clone();
        generator.set_current_seed(seed);
    }
}

string CompiledProposalModel::getRandomState() const {
    at::Tensor state = generator.get_state();
    return string((const char*) state.data_ptr<uint8_t>(), state.numel());
}

void CompiledProposalModel::setRandomState(const string& state) {
    at::Tensor current = generator.get_state();
    if (state.size() != (size_t) current.numel())
        throw OpenMMException("TimewarpIntegrator: the checkpoint's random state of the model does not fit this torch version");
    memcpy(current.data_ptr<uint8_t>(), state.data(), state.size());
    generator.set_state(current);
}
