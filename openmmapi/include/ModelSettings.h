#ifndef OPENMM_TIMEWARP_MODELSETTINGS_H_
#define OPENMM_TIMEWARP_MODELSETTINGS_H_

#include "internal/windowsExportTimewarp.h"
#include <string>

namespace TimewarpPlugin {

/**
 * The integrator settings a model file recommends in its archive entry timewarp.json (see
 * docs/model-contract.md, "The settings entry").  A file without the entry recommends the defaults
 * held by a default-constructed object: no hybrid Monte Carlo moves, 10 steps of 1 fs, the System's masses.
 */
class OPENMM_EXPORT_TIMEWARP ModelSettings {
public:
    /** The name of the archive entry (a TorchScript extra file) that holds the settings. */
    static const char* entryName() {
        return "timewarp.json";
    }
    ModelSettings() : hmcInterval(0), hmcSteps(10), hmcStepSize(0.001), hmcMinimumMass(0), needsFastCoordinateMoves(false) {
    }
    /**
     * Read the settings from the text of a timewarp.json entry.  Only integrator.hmc_interval,
     * integrator.hmc_steps, integrator.hmc_step_size_ps, integrator.hmc_minimum_mass_amu and
     * needs_fast_coordinate_moves are used;
     * other keys are ignored, absent ones keep their defaults.
     *
     * @param json    the entry's text (empty: the defaults)
     * @param source  the model file, named in error messages
     * @throws OpenMM::OpenMMException if the text is not JSON, or a used key has the wrong type or an invalid value
     */
    static ModelSettings parse(const std::string& json, const std::string& source);
    /** Recommended number of model steps between hybrid Monte Carlo moves (0: none). */
    int hmcInterval;
    /** Recommended number of velocity Verlet steps per hybrid Monte Carlo move. */
    int hmcSteps;
    /** Recommended velocity Verlet step size of hybrid Monte Carlo moves, in ps. */
    double hmcStepSize;
    /** Recommended smallest particle mass in hybrid Monte Carlo moves, in Daltons (0: the System's masses). */
    double hmcMinimumMass;
    /** Whether the model's moves never change some coordinates, so the chain needs hybrid Monte Carlo moves to be ergodic. */
    bool needsFastCoordinateMoves;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_MODELSETTINGS_H_*/
