#ifndef OPENMM_TIMEWARP_TORCHSCRIPTPROPOSALMODEL_H_
#define OPENMM_TIMEWARP_TORCHSCRIPTPROPOSALMODEL_H_

#include "ProposalModel.h"
#include <torch/script.h>

namespace TimewarpPlugin {

/**
 * A ProposalModel stored as a TorchScript module.  The module draws its random numbers from torch's
 * default generator of its device (the CPU generator for "cpu"); this class swaps its own generator
 * state in around every call, so that models do not share a stream with each other or with the
 * user's torch code.
 */
class TorchScriptProposalModel : public ProposalModel {
public:
    /**
     * Load and validate a TorchScript model from a file's bytes, with its timewarp.json entry.
     *
     * @param data    the bytes of the model file
     * @param file    where they came from, named in error messages
     * @param device  the torch device to load the module onto, e.g. "cpu"
     * @throws OpenMM::OpenMMException naming the file and what is wrong
     */
    TorchScriptProposalModel(const std::string& data, const std::string& file, const std::string& device);
    std::string getDevice() const;
    void proposeTensors(const at::Tensor& positions, const at::Tensor& atomTypes, int numProposals, at::Tensor& proposals,
                        at::Tensor& logRatios);
    void setRandomSeed(uint64_t seed);
    std::string getRandomState() const;
    void setRandomState(const std::string& state);
private:
    std::string file;
    torch::Device device;
    torch::jit::Module module;
    at::Tensor generatorState;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_TORCHSCRIPTPROPOSALMODEL_H_*/
