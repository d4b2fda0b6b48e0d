#ifndef OPENMM_TIMEWARP_COMPILEDPROPOSALMODEL_H_
#define OPENMM_TIMEWARP_COMPILEDPROPOSALMODEL_H_

#include "ProposalModel.h"
#include <ATen/core/Generator.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>
#include <memory>

namespace TimewarpPlugin {

/**
 * A ProposalModel stored under contract version 2 (docs/model-contract.md): an AOTInductor package
 * holding, for each kernel, a compiled pure function of the positions, the molecule's topology and
 * the random variates, with a TorchScript module that finds the topology once per bond graph.
 *
 * The random variates come from this object's own generator (seeded, and saved in checkpoints):
 * per batch of a model with several kernels, one uniform per proposal chooses its kernel by the
 * kernels' weights, then each kernel with proposals gets its normals and uniforms, in kernel order
 * (a model of one kernel draws no choices); proposeTensors() runs the chosen kernels' programs and
 * assembles their rows.
 */
class CompiledProposalModel : public ProposalModel {
public:
    /**
     * Load and validate a v2 model from a file's bytes.
     *
     * @param data    the bytes of the model file
     * @param file    where they came from, named in error messages
     * @param device  the torch device to run the model on
     * @throws OpenMM::OpenMMException naming the file and what is wrong
     */
    CompiledProposalModel(const std::string& data, const std::string& file, const std::string& device);
    /** Whether the bytes of a model file are a v2 archive (an AOTInductor package with the contract's entries). */
    static bool isCompiledModel(const std::string& data);
    std::string getDevice() const;
    void proposeTensors(const at::Tensor& positions, const at::Tensor& atomTypes, int numProposals, at::Tensor& proposals,
                        at::Tensor& logRatios);
    void setRandomSeed(uint64_t seed);
    std::string getRandomState() const;
    void setRandomState(const std::string& state);
private:
    void findTopology(const at::Tensor& positions, const at::Tensor& atomTypes);
    std::vector<at::Tensor> runProgram(int kernel, const at::Tensor& positions, const at::Tensor& atomTypes,
                                       const at::Tensor& normals, const at::Tensor& uniforms);
    std::string file;
    torch::Device device;
    torch::jit::Module topologyModule;
    std::vector<std::unique_ptr<torch::inductor::AOTIModelPackageLoader> > programs;
    std::vector<double> weights;
    std::vector<int64_t> numNormals, numUniforms;
    // Each kernel's topology for the molecule last seen (entry 0: whether it can move it).
    std::vector<std::vector<at::Tensor> > topology;
    at::Tensor topologyTypes;
    std::vector<bool> available;
    at::Generator generator;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_COMPILEDPROPOSALMODEL_H_*/
