#ifndef OPENMM_TIMEWARP_TIMEWARPINTEGRATOR_H_
#define OPENMM_TIMEWARP_TIMEWARPINTEGRATOR_H_

#include "openmm/Integrator.h"
#include "openmm/Kernel.h"
#include "internal/windowsExportTimewarp.h"
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace TimewarpPlugin {

class ProposalModel;

/**
 * An Integrator whose steps are large, learned moves: a proposal model (a conditional
 * normalizing flow trained on molecular dynamics, stored as a TorchScript file that follows the
 * proposal-model contract) proposes new positions, and each proposal is accepted or rejected with
 * the Metropolis-Hastings rule against the potential energy the Context computes for the
 * integration force groups.  The chain therefore samples the Boltzmann distribution of the System
 * at the integrator's temperature, including any bias forces it contains.
 *
 * Each call to step() performs one Metropolis-Hastings transition per step: a rejected proposal is
 * a step that keeps the current state.  The model is asked for a batch of proposals of the same
 * state at once; they are consumed in order and the rest of the batch is discarded once one is
 * accepted, which is exactly sequential Metropolis-Hastings.  The step size is the model's lag time.
 *
 * With Metropolis-Hastings switched off (exploration mode) a proposal is accepted unless it raises
 * the energy by more than a threshold or inverts a registered chiral centre.  This explores
 * metastable states quickly but does not sample the Boltzmann distribution.
 *
 * Velocities carry no dynamics: after every call to step() they are drawn from the Maxwell-Boltzmann
 * distribution at the integrator's temperature (with the centre-of-mass velocity removed when the
 * System has a CMMotionRemover), so the Context holds a sample of the canonical ensemble in phase
 * space and reporters show the sampling temperature.
 *
 * Optionally, every getHMCInterval() steps (counted by the Context's step count) the step is followed
 * by one hybrid Monte Carlo move: velocities drawn at the integrator's temperature, getHMCSteps()
 * velocity Verlet steps of getHMCStepSize() (varied by up to 20% from move to move, against
 * resonances) with the integration force groups, and a Metropolis test
 * on the total energy.  Such a move is exact on its own and cheap for the fast coordinates (bonds,
 * angles, rotors) that large learned moves mix poorly, so interleaving it keeps the chain exact and
 * lets it mix them.  Its masses are only the metric of its kinetic energy, so they may differ from
 * the System's without changing the sampled distribution of positions: with getHMCMinimumMass() > 0
 * every particle lighter than that (in practice, hydrogens) moves as if it had that mass, which
 * allows steps about twice as long, as hydrogen mass repartitioning does for MD.
 *
 * By default the hybrid Monte Carlo settings are those the model file recommends (its timewarp.json
 * entry, see docs/model-contract.md); the setters override them.
 *
 * The integrator keeps the bytes of its model file, so its XML serialization embeds the model and
 * is self-contained.
 *
 * The potential energy of the current state is recomputed at the start of every call to step(), so
 * forces whose parameters change between calls (metadynamics biases, restraints switched on or off)
 * are honoured; within one call the System must not change.
 */
class OPENMM_EXPORT_TIMEWARP TimewarpIntegrator : public OpenMM::Integrator {
public:
    /**
     * Create a TimewarpIntegrator from a model file, which is read once.
     *
     * @param modelFile    path of a TorchScript proposal model following contract version 1
     * @param elements     the element symbol of every particle of the System, in order
     * @param temperature  the temperature of the Boltzmann distribution to sample, in K
     * @throws OpenMM::OpenMMException if the file is unreadable or not a valid model, an element is
     *         unknown to the model, or the temperature is not positive and finite
     */
    TimewarpIntegrator(const std::string& modelFile, const std::vector<std::string>& elements, double temperature);
    /**
     * Create a TimewarpIntegrator from the bytes of a model file.
     *
     * @param modelData    the bytes of a TorchScript proposal model following contract version 1
     * @param elements     the element symbol of every particle of the System, in order
     * @param temperature  the temperature of the Boltzmann distribution to sample, in K
     * @param modelFile    the path the bytes were read from, reported by getModelFile() and in
     *                     messages; empty if they have no file
     * @throws OpenMM::OpenMMException as the constructor from a file does
     */
    TimewarpIntegrator(const std::string& modelData, const std::vector<std::string>& elements, double temperature,
                       const std::string& modelFile);
    ~TimewarpIntegrator();
    /** Get the path of the model file (empty if the integrator was created from bytes without one). */
    const std::string& getModelFile() const {
        return modelFile;
    }
    /** Get the bytes of the model file, which serialization embeds. */
    const std::string& getModelData() const {
        return modelData;
    }
    /** Get the element symbol of every particle. */
    const std::vector<std::string>& getElements() const {
        return elements;
    }
    /** Get the temperature of the sampled distribution, in K. */
    double getTemperature() const {
        return temperature;
    }
    /** Set the temperature of the sampled distribution, in K. */
    void setTemperature(double temperature);
    /** Get whether proposals are accepted with the Metropolis-Hastings rule (true) or explored (false). */
    bool getMetropolisHastings() const {
        return metropolisHastings;
    }
    /**
     * Set whether proposals are accepted with the Metropolis-Hastings rule.  When false the integrator
     * is in exploration mode: fast but biased.
     */
    void setMetropolisHastings(bool enabled);
    /** Get the number of proposals requested from the model at once (the maximum when adaptive). */
    int getProposalsPerBatch() const {
        return proposalsPerBatch;
    }
    /** Set the number of proposals requested from the model at once (the maximum when adaptive). */
    void setProposalsPerBatch(int proposals);
    /** Get whether the batch size adapts to the acceptance rate. */
    bool getAdaptiveBatchSize() const {
        return adaptiveBatchSize;
    }
    /**
     * Set whether the batch size adapts to the acceptance rate, so that a batch holds an accepted
     * proposal with a probability of about 0.9 (capped at getProposalsPerBatch()).
     */
    void setAdaptiveBatchSize(bool adaptive);
    /** Get the largest energy increase exploration mode accepts, in kJ/mol. */
    double getExplorationEnergyThreshold() const {
        return explorationThreshold;
    }
    /** Set the largest energy increase exploration mode accepts, in kJ/mol. */
    void setExplorationEnergyThreshold(double threshold);
    /** Get the number of model steps between hybrid Monte Carlo moves (0: none). */
    int getHMCInterval() const {
        return hmcInterval;
    }
    /**
     * Set the number of model steps between hybrid Monte Carlo moves: a step whose Context step count
     * becomes a multiple of it is followed by one move.  0 disables them.  The default is the
     * model's recommendation (getModelRecommendedHMCInterval()).
     */
    void setHMCInterval(int interval);
    /** Get the number of velocity Verlet steps of a hybrid Monte Carlo move. */
    int getHMCSteps() const {
        return hmcSteps;
    }
    /** Set the number of velocity Verlet steps of a hybrid Monte Carlo move. */
    void setHMCSteps(int steps);
    /** Get the velocity Verlet step size of hybrid Monte Carlo moves, in ps. */
    double getHMCStepSize() const {
        return hmcStepSize;
    }
    /** Set the velocity Verlet step size of hybrid Monte Carlo moves, in ps. */
    void setHMCStepSize(double stepSize);
    /** Get the smallest mass a particle has in hybrid Monte Carlo moves, in Daltons (0: the System's masses). */
    double getHMCMinimumMass() const {
        return hmcMinimumMass;
    }
    /**
     * Set the smallest mass a particle has in hybrid Monte Carlo moves, in Daltons: a particle whose
     * mass in the System is lower moves with this mass instead.  Only the kinetic energy of the
     * moves changes, so the chain still samples the Boltzmann distribution of positions; 0 uses
     * the System's masses.  The default is the model's recommendation
     * (getModelRecommendedHMCMinimumMass()).
     */
    void setHMCMinimumMass(double mass);
    /**
     * Register a chiral centre that exploration mode must not invert: the sign of the triple product
     * of the vectors from center to atom1, atom2 and atom3 must not change.
     *
     * @return the index of the chiral centre
     */
    int addChiralCenter(int center, int atom1, int atom2, int atom3);
    /** Get the number of registered chiral centres. */
    int getNumChiralCenters() const {
        return chiralCenters.size() / 4;
    }
    /** Get the atoms of a chiral centre. */
    void getChiralCenterParameters(int index, int& center, int& atom1, int& atom2, int& atom3) const;
    /** Get the random number seed.  See setRandomNumberSeed(). */
    int getRandomNumberSeed() const {
        return randomNumberSeed;
    }
    /**
     * Set the random number seed of the acceptance test, the velocities and the model's proposals.
     * If it is 0, a unique seed is chosen when the Context is created.  Changes after the Context is
     * created have no effect.
     */
    void setRandomNumberSeed(int seed);
    /** Get the number of proposals made since the statistics were last reset. */
    long long getNumProposed() const;
    /** Get the number of proposals accepted since the statistics were last reset. */
    long long getNumAccepted() const;
    /** Get the fraction of proposals accepted since the statistics were last reset (0 before any). */
    double getAcceptanceRate() const;
    /** Get the number of hybrid Monte Carlo moves made since the statistics were last reset. */
    long long getNumHMCProposed() const;
    /** Get the number of hybrid Monte Carlo moves accepted since the statistics were last reset. */
    long long getNumHMCAccepted() const;
    /** Get the fraction of hybrid Monte Carlo moves accepted since the statistics were last reset (0 before any). */
    double getHMCAcceptanceRate() const;
    /** Reset the acceptance statistics (of the model's proposals and of hybrid Monte Carlo) to zero. */
    void resetStatistics();
    /** Get the lag time of the model, in ps (also the step size). */
    double getModelLagTime() const;
    /** Get the temperature of the model's training data, in K. */
    double getModelTemperature() const;
    /** Get whether the model provides exact log ratios (required for Metropolis-Hastings). */
    bool getModelHasDensity() const;
    /** Get the model's element symbols. */
    const std::vector<std::string>& getModelElements() const;
    /** Get the hybrid Monte Carlo interval the model file recommends (0: none). */
    int getModelRecommendedHMCInterval() const;
    /** Get the number of velocity Verlet steps per hybrid Monte Carlo move the model file recommends. */
    int getModelRecommendedHMCSteps() const;
    /** Get the hybrid Monte Carlo step size the model file recommends, in ps. */
    double getModelRecommendedHMCStepSize() const;
    /** Get the smallest hybrid Monte Carlo mass the model file recommends, in Daltons (0: the System's masses). */
    double getModelRecommendedHMCMinimumMass() const;
    /**
     * Get whether the model's moves never change some coordinates (bond lengths, angles), so that the
     * chain is ergodic only with hybrid Monte Carlo moves (getHMCInterval() > 0).
     */
    bool getModelNeedsFastCoordinateMoves() const;
    /**
     * Get whether the System of the Context this integrator was last bound to computes a force with
     * a CustomGBForce (as ForceField's implicit/obc2.xml builds implicit solvent), for which the
     * Python layer advises the equivalent built-in GBSAOBCForce, an order of magnitude faster.
     * False before the integrator is bound to a Context.
     */
    bool getSystemHasCustomGBForce() const {
        return systemHasCustomGB;
    }
    /**
     * Advance a simulation by a number of Metropolis-Hastings steps.
     *
     * @param steps   the number of steps to take
     */
    void step(int steps);
    /** Get the model (for the platform kernels). */
    ProposalModel& getModel() const {
        return *model;
    }
    /** Get the model's index of every particle's element (for the platform kernels). */
    const std::vector<int64_t>& getAtomTypes() const {
        return atomTypes;
    }
protected:
    void initialize(OpenMM::ContextImpl& context);
    void cleanup();
    std::vector<std::string> getKernelNames();
    double computeKineticEnergy();
    bool kineticEnergyRequiresForce() const {
        return false;
    }
    void createCheckpoint(std::ostream& stream) const;
    void loadCheckpoint(std::istream& stream);
private:
    void loadModel();
    std::string modelSource() const;
    std::string modelFile, modelData;
    std::vector<std::string> elements;
    std::vector<int64_t> atomTypes;
    std::shared_ptr<ProposalModel> model;
    double temperature, explorationThreshold, hmcStepSize, hmcMinimumMass;
    bool metropolisHastings, adaptiveBatchSize, systemHasCustomGB;
    int proposalsPerBatch, randomNumberSeed, hmcInterval, hmcSteps;
    std::vector<int> chiralCenters;
    OpenMM::Kernel kernel;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_TIMEWARPINTEGRATOR_H_*/
