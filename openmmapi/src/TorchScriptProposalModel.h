#ifndef OPENMM_TIMEWARP_TORCHSCRIPTPROPOSALMODEL_H_
#define OPENMM_TIMEWARP_TORCHSCRIPTPROPOSALMODEL_H_

#include "ProposalModel.h"
#include <torch/script.h>

namespace TimewarpPlugin {

/**
 * A ProposalModel stored as a TorchScript module.  The module draws its random numbers from torch's
 * default CPU generator; this class swaps its own generator state in around every call, so that
 * models do not share a stream with each other or with the user's torch code.
 */
class TorchScriptProposalModel : public ProposalModel {
public:
    /** Load and validate a TorchScript file; throws an OpenMMException naming what is wrong. */
    explicit TorchScriptProposalModel(const std::string& file);
    const std::vector<std::string>& getElements() const {
        return elements;
    }
    double getLagTime() const {
        return lagTime;
    }
    double getTemperature() const {
        return temperature;
    }
    bool hasDensity() const {
        return density;
    }
    void propose(const std::vector<OpenMM::Vec3>& positions, const std::vector<int64_t>& atomTypes, int numProposals,
                 std::vector<std::vector<OpenMM::Vec3> >& proposals, std::vector<double>& logRatios);
    void setRandomSeed(uint64_t seed);
    std::string getRandomState() const;
    void setRandomState(const std::string& state);
private:
    c10::IValue callMethod(const std::string& name);
    std::string file;
    torch::jit::Module module;
    std::vector<std::string> elements;
    double lagTime, temperature;
    bool density;
    at::Tensor generatorState;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_TORCHSCRIPTPROPOSALMODEL_H_*/
