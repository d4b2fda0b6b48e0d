#ifndef OPENMM_TIMEWARP_MODELLOADING_H_
#define OPENMM_TIMEWARP_MODELLOADING_H_

// What every model format's loader shares: its error messages and the choice of torch device.

#include "openmm/OpenMMException.h"
#include <torch/script.h>
#include <torch/torch.h>
#include <string>
#include <vector>

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

/**
 * Clear the upper halves of the vector registers after torch code ran (vzeroupper on x86-64 with
 * AVX). Compiled models (AOTInductor, AVX2/AVX-512 code) can return with them dirty, and then every
 * SSE instruction of OpenMM's Reference and CPU kernels pays a transition penalty: measured here,
 * one energy of ACE-ALA-NME took 204 us instead of 28 us until a vzeroupper ran.
 */
inline void clearUpperVectorState() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static const bool hasAVX = __builtin_cpu_supports("avx");
    if (hasAVX)
        __asm__ volatile("vzeroupper" ::: "memory");
#endif
}

/** Call a method without arguments of a model's TorchScript module, naming the file if it fails. */
inline c10::IValue callModelMethod(torch::jit::Module& module, const std::string& name, const std::string& file) {
    if (!module.find_method(name))
        failModel(file, "is not a Timewarp proposal model: it has no method " + name + "()");
    try {
        return module.get_method(name)(std::vector<c10::IValue>());
    }
    catch (const std::exception& e) {
        failModel(file, "calling " + name + "() failed: " + e.what());
    }
}

/**
 * Read the contract's facts from a module's methods (version 1: the model; version 2: its topology
 * module): check contract_version() against the version the format follows, then elements(),
 * lag_time_ps(), temperature_kelvin() and has_density(), which must be sensible.
 */
inline void readModelFacts(torch::jit::Module& module, const std::string& file, int version, const std::string& format,
                           std::vector<std::string>& elements, double& lagTime, double& temperature, bool& density) {
    int found = callModelMethod(module, "contract_version", file).toInt();
    if (found != version)
        failModel(file, "is a " + format + " of proposal-model contract version " + std::to_string(found) +
                  ", but this plugin reads " + format + "s of version " + std::to_string(version));
    elements.clear();
    for (const c10::IValue& e : callModelMethod(module, "elements", file).toListRef())
        elements.push_back(e.toStringRef());
    lagTime = callModelMethod(module, "lag_time_ps", file).toDouble();
    temperature = callModelMethod(module, "temperature_kelvin", file).toDouble();
    density = callModelMethod(module, "has_density", file).toBool();
    if (elements.empty() || !(lagTime > 0) || !(temperature > 0))
        failModel(file, "reports no elements, or a non-positive lag time or temperature");
}

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_MODELLOADING_H_*/
