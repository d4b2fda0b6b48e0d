#ifndef OPENMM_TIMEWARP_TIMEWARPINTEGRATORPROXY_H_
#define OPENMM_TIMEWARP_TIMEWARPINTEGRATORPROXY_H_

#include "internal/windowsExportTimewarp.h"
#include "openmm/serialization/SerializationProxy.h"

namespace TimewarpPlugin {

/**
 * Serializes a TimewarpIntegrator.  Version 2 embeds the model file's bytes (base64, property
 * "modelData") beside its original path ("modelFile", informational), so the XML is self-contained:
 * it deserializes where the original file does not exist.  Version 1 files, which hold only the
 * path, are still read, by loading the model from that path.
 */
class OPENMM_EXPORT_TIMEWARP TimewarpIntegratorProxy : public OpenMM::SerializationProxy {
public:
    TimewarpIntegratorProxy();
    /** Write every setting of the integrator and its model's bytes to a node. */
    void serialize(const void* object, OpenMM::SerializationNode& node) const;
    /**
     * Create a new TimewarpIntegrator from a node written by serialize() (version 1 or 2).
     *
     * @throws OpenMM::OpenMMException for an unknown version, invalid embedded data, or a model that cannot be loaded
     */
    void* deserialize(const OpenMM::SerializationNode& node) const;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_TIMEWARPINTEGRATORPROXY_H_*/
