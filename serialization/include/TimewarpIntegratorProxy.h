#ifndef OPENMM_TIMEWARP_TIMEWARPINTEGRATORPROXY_H_
#define OPENMM_TIMEWARP_TIMEWARPINTEGRATORPROXY_H_

#include "internal/windowsExportTimewarp.h"
#include "openmm/serialization/SerializationProxy.h"

namespace TimewarpPlugin {

/**
 * Serializes a TimewarpIntegrator.  The XML refers to the model file by path instead of embedding
 * it, which keeps it small; deserializing loads the model again from that path.
 */
class OPENMM_EXPORT_TIMEWARP TimewarpIntegratorProxy : public OpenMM::SerializationProxy {
public:
    TimewarpIntegratorProxy();
    void serialize(const void* object, OpenMM::SerializationNode& node) const;
    void* deserialize(const OpenMM::SerializationNode& node) const;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_TIMEWARPINTEGRATORPROXY_H_*/
