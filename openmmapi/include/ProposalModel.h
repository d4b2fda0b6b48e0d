#ifndef OPENMM_TIMEWARP_PROPOSALMODEL_H_
#define OPENMM_TIMEWARP_PROPOSALMODEL_H_

#include "openmm/Vec3.h"
#include "internal/windowsExportTimewarp.h"
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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
 */
class OPENMM_EXPORT_TIMEWARP ProposalModel {
public:
    /** The contract version this build of the plugin understands. */
    static const int CONTRACT_VERSION = 1;
    virtual ~ProposalModel() {
    }
    /**
     * Load a model file.  Throws an OpenMMException naming the file and the problem if it is
     * missing, unreadable, not a proposal model, or of another contract version.
     */
    static std::shared_ptr<ProposalModel> load(const std::string& file);
    /** Element symbols the model knows; atom types are indices into this list. */
    virtual const std::vector<std::string>& getElements() const = 0;
    /** The lag time the model was trained for, in ps. */
    virtual double getLagTime() const = 0;
    /** The temperature of the model's training data, in K. */
    virtual double getTemperature() const = 0;
    /** Whether the returned log ratios are exact (false for a surrogate without a density). */
    virtual bool hasDensity() const = 0;
    /**
     * Draw proposals from the current state.
     *
     * @param positions     the current positions, in nm
     * @param atomTypes     for each atom, its index in getElements()
     * @param numProposals  how many independent proposals to draw
     * @param proposals     on exit, numProposals sets of positions, in nm
     * @param logRatios     on exit, the non-energy part of the log MH ratio of each proposal
     */
    virtual void propose(const std::vector<OpenMM::Vec3>& positions, const std::vector<int64_t>& atomTypes, int numProposals,
                         std::vector<std::vector<OpenMM::Vec3> >& proposals, std::vector<double>& logRatios) = 0;
    /** Reset the model's random number stream from a seed. */
    virtual void setRandomSeed(uint64_t seed) = 0;
    /** The state of the model's random number stream, as opaque bytes. */
    virtual std::string getRandomState() const = 0;
    /** Restore a state returned by getRandomState(). */
    virtual void setRandomState(const std::string& state) = 0;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_PROPOSALMODEL_H_*/
