#include "ProposalModel.h"
#include "TorchScriptProposalModel.h"
#ifdef TIMEWARP_COMPILED_MODELS
#include "CompiledProposalModel.h"
#endif
#include "openmm/OpenMMException.h"
#include <torch/torch.h>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace TimewarpPlugin;
using namespace std;

string ProposalModel::readFile(const string& file) {
    ifstream stream(file, ios::binary);
    stringstream data;
    if (stream.is_open())
        data << stream.rdbuf();
    if (!stream.is_open() || stream.bad())
        throw OpenMM::OpenMMException("TimewarpIntegrator: model file " + file + ": cannot be opened (missing or unreadable)");
    return data.str();
}

shared_ptr<ProposalModel> ProposalModel::loadFromBytes(const string& data, const string& source, const string& device) {
    // Both formats are zip archives; a compiled (contract v2) one holds AOTInductor programs.
#ifdef TIMEWARP_COMPILED_MODELS
    if (CompiledProposalModel::isCompiledModel(data))
        return make_shared<CompiledProposalModel>(data, source, device);
#else
    if (data.find("data/aotinductor/") != string::npos)
        throw OpenMM::OpenMMException("TimewarpIntegrator: model file " + source + " is a compiled (contract v2) file, "
                                      "but this plugin was built against a torch without AOTInductor's package loader "
                                      "(torch 2.6 or newer); use the TorchScript (.pt) file it was compiled from");
#endif
    return make_shared<TorchScriptProposalModel>(data, source, device);
}

shared_ptr<ProposalModel> ProposalModel::load(const string& file, const string& device) {
    return loadFromBytes(readFile(file), file, device);
}

void ProposalModel::propose(const vector<OpenMM::Vec3>& positions, const vector<int64_t>& atomTypes, int numProposals,
                            vector<vector<OpenMM::Vec3> >& proposals, vector<double>& logRatios) {
    static_assert(sizeof(OpenMM::Vec3) == 3 * sizeof(double), "Vec3 must be three packed doubles");
    int numAtoms = positions.size();
    torch::Device device(getDevice());
    at::Tensor x = torch::from_blob((void*) positions.data(), {numAtoms, 3}, torch::kFloat64).to(device, false, true);
    at::Tensor types = torch::from_blob((void*) atomTypes.data(), {numAtoms}, torch::kInt64).to(device, false, true);
    at::Tensor y, logRatio;
    proposeTensors(x, types, numProposals, y, logRatio);
    y = y.to(torch::kCPU).contiguous();
    logRatio = logRatio.to(torch::kCPU).contiguous();
    proposals.resize(numProposals);
    const double* data = y.data_ptr<double>();
    for (int i = 0; i < numProposals; i++) {
        proposals[i].resize(numAtoms);
        memcpy(proposals[i].data(), data + 3 * numAtoms * i, 3 * numAtoms * sizeof(double));
    }
    logRatios.assign(logRatio.data_ptr<double>(), logRatio.data_ptr<double>() + numProposals);
}

void ProposalModel::checkProposalShapes(const string& source, int64_t numAtoms, int numProposals, const at::Tensor& proposals,
                                        const at::Tensor& logRatios) {
    if (proposals.dim() != 3 || proposals.size(0) != numProposals || proposals.size(1) != numAtoms || proposals.size(2) != 3)
        throw OpenMM::OpenMMException("TimewarpIntegrator: model file " + source + ": the model returned proposals of shape " +
                                      c10::str(proposals.sizes()) + ", expected [" + to_string(numProposals) + ", " +
                                      to_string(numAtoms) + ", 3]");
    if (logRatios.dim() != 1 || logRatios.size(0) != numProposals)
        throw OpenMM::OpenMMException("TimewarpIntegrator: model file " + source + ": the model returned log ratios of shape " +
                                      c10::str(logRatios.sizes()) + ", expected [" + to_string(numProposals) + "]");
}
