#ifndef OPENMM_TIMEWARP_PROPOSALMODEL_H_
#define OPENMM_TIMEWARP_PROPOSALMODEL_H_

#include "ModelSettings.h"
#include "openmm/Vec3.h"
#include "internal/windowsExportTimewarp.h"
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace TimewarpPlugin {

/**
 * A learned proposal distribution q(y | x) following the proposal-model contract (version 1):
 * given the current positions it returns a batch of proposed positions and, for each, the
 * non-energy part of the log Metropolis-Hastings ratio.
 *
 * This is the one interface through which the integrator talks to a model file, so that formats
 * other than TorchScript can be added without touching the integrator or its kernels.  Each
 * instance owns the state of its random number generator, so two integrators never share a stream
 * and a checkpoint can restore it.
 *
 * A model lives on a device chosen when it is loaded (a torch device string: "cpu", the default,
 * or e.g. "cuda:0").  It has two entry points: proposeTensors() takes and returns tensors on that
 * device, so a GPU kernel never copies positions to the host, and propose() wraps it for host
 * vectors, which is what the platform-independent kernel uses.
 */
class OPENMM_EXPORT_TIMEWARP ProposalModel {
public:
    /** The contract version of TorchScript model files. */
    static const int CONTRACT_VERSION = 1;
    /** The contract version of compiled (AOTInductor) model files; this build reads both. */
    static const int COMPILED_CONTRACT_VERSION = 2;
    virtual ~ProposalModel() {
    }
    /**
     * Read the bytes of a model file.
     *
     * @throws OpenMM::OpenMMException naming the file if it is missing or unreadable
     */
    static std::string readFile(const std::string& file);
    /**
     * Load a model from the bytes of a model file.
     *
     * @param data    the file's bytes
     * @param source  where the bytes came from (a path, or a description), named in error messages
     * @param device  the torch device to place the model on, e.g. "cpu" or "cuda:0"
     * @throws OpenMM::OpenMMException naming the source and the problem if the bytes are not a
     *         proposal model, follow another contract version, or carry invalid settings
     */
    static std::shared_ptr<ProposalModel> loadFromBytes(const std::string& data, const std::string& source,
                                                        const std::string& device = "cpu");
    /**
     * Load a model file (readFile() then loadFromBytes()).
     *
     * @param file    the path of the model file
     * @param device  the torch device to place the model on
     */
    static std::shared_ptr<ProposalModel> load(const std::string& file, const std::string& device = "cpu");
    /** The device the model lives on, as a torch device string. */
    virtual std::string getDevice() const = 0;
    /** The integrator settings the model file recommends (its timewarp.json entry, else the defaults). */
    const ModelSettings& getSettings() const {
        return settings;
    }
    /** Element symbols the model knows; atom types are indices into this list. */
    const std::vector<std::string>& getElements() const {
        return elements;
    }
    /** The lag time the model was trained for, in ps. */
    double getLagTime() const {
        return lagTime;
    }
    /** The temperature of the model's training data, in K. */
    double getTemperature() const {
        return temperature;
    }
    /** Whether the returned log ratios are exact (false for a surrogate without a density). */
    bool hasDensity() const {
        return density;
    }
    /**
     * Draw proposals from the current state.
     *
     * @param positions     the current positions, in nm
     * @param atomTypes     for each atom, its index in getElements()
     * @param numProposals  how many independent proposals to draw
     * @param proposals     on exit, numProposals sets of positions, in nm
     * @param logRatios     on exit, the non-energy part of the log MH ratio of each proposal
     */
    void propose(const std::vector<OpenMM::Vec3>& positions, const std::vector<int64_t>& atomTypes, int numProposals,
                 std::vector<std::vector<OpenMM::Vec3> >& proposals, std::vector<double>& logRatios);
    /**
     * Draw proposals from positions held on the model's device (getDevice()).
     *
     * @param positions     the current positions, (N, 3) float64 in nm, on the model's device
     * @param atomTypes     for each atom, its index in getElements(), (N,) int64 on the model's device
     * @param numProposals  how many independent proposals to draw
     * @param proposals     on exit, (numProposals, N, 3) float64 in nm, on the model's device
     * @param logRatios     on exit, (numProposals,) float64 on the model's device: the non-energy part
     *                      of the log MH ratio of each proposal
     * @throws OpenMM::OpenMMException naming the model file if the model fails or returns the wrong shapes
     */
    virtual void proposeTensors(const at::Tensor& positions, const at::Tensor& atomTypes, int numProposals,
                                at::Tensor& proposals, at::Tensor& logRatios) = 0;
    /**
     * Check the shapes of what a model returned.
     *
     * @throws OpenMM::OpenMMException naming the source if proposals is not (numProposals, numAtoms, 3)
     *         or logRatios not (numProposals,)
     */
    static void checkProposalShapes(const std::string& source, int64_t numAtoms, int numProposals,
                                    const at::Tensor& proposals, const at::Tensor& logRatios);
    /** Reset the model's random number stream from a seed. */
    virtual void setRandomSeed(uint64_t seed) = 0;
    /** The state of the model's random number stream, as opaque bytes. */
    virtual std::string getRandomState() const = 0;
    /** Restore a state returned by getRandomState(). */
    virtual void setRandomState(const std::string& state) = 0;
protected:
    // What every format reports, set by the loader of each (see internal ModelLoading.h).
    ModelSettings settings;
    std::vector<std::string> elements;
    double lagTime = 0, temperature = 0;
    bool density = false;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_PROPOSALMODEL_H_*/
