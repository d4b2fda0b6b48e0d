#ifndef OPENMM_TIMEWARP_MODELLOADING_H_
#define OPENMM_TIMEWARP_MODELLOADING_H_

// What every model format's loader shares: its error messages and the choice of torch device.

#include "openmm/OpenMMException.h"
#include <torch/torch.h>
#include <string>

namespace TimewarpPlugin {

/** Throw the loader's error about a model file (or bytes described by file). */
[[noreturn]] inline void failModel(const std::string& file, const std::string& message) {
    throw OpenMM::OpenMMException("TimewarpIntegrator: model file " + file + ": " + message);
}

/** A torch device from its name, checked to exist in this process. */
inline torch::Device parseModelDevice(const std::string& name, const std::string& file) {
    try {
        torch::Device device(name);
        at::empty({1}, torch::TensorOptions().device(device));
        return device;
    }
    catch (const std::exception& e) {
        failModel(file, "cannot be placed on device '" + name + "': " + e.what());
    }
}

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_MODELLOADING_H_*/
