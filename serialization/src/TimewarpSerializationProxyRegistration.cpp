#include "TimewarpIntegrator.h"
#include "TimewarpIntegratorProxy.h"
#include "internal/windowsExportTimewarp.h"
#include "openmm/serialization/SerializationProxy.h"
#include <typeinfo>

using namespace TimewarpPlugin;
using namespace OpenMM;

extern "C" OPENMM_EXPORT_TIMEWARP void registerTimewarpSerializationProxies() {
    SerializationProxy::registerProxy(typeid(TimewarpIntegrator), new TimewarpIntegratorProxy());
}

// Register when the library is loaded, so that XmlSerializer knows the integrator from any language.
namespace {
struct ProxyRegistration {
    ProxyRegistration() {
        registerTimewarpSerializationProxies();
    }
} proxyRegistration;
}
