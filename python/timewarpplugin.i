%module(package="openmm_timewarp") timewarpplugin

%import(module="openmm") "swig/OpenMMSwigHeaders.i"
%include "swig/typemaps.i"
%include <std_string.i>
%include <std_vector.i>
%include <typemaps.i>

%{
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include "OpenMM.h"
#include "OpenMMAmoeba.h"
#include "OpenMMDrude.h"
#include "openmm/RPMDIntegrator.h"
#include "openmm/RPMDMonteCarloBarostat.h"
#include "openmm/serialization/XmlSerializer.h"
#include "TimewarpIntegrator.h"
#include <sstream>
%}

%init %{
    import_array();
%}

%pythoncode %{
from openmm import unit
%}

%template(StringVector) std::vector<std::string>;

/* C++ exceptions become openmm.OpenMMException, as in OpenMM's own wrappers. */
%exception {
    try {
        $action
    } catch (std::exception& e) {
        PyObject* openmm = PyImport_ImportModule("openmm");
        PyObject* exceptionType = openmm == NULL ? NULL : PyObject_GetAttrString(openmm, "OpenMMException");
        PyErr_SetString(exceptionType == NULL ? PyExc_RuntimeError : exceptionType, e.what());
        Py_XDECREF(exceptionType);
        Py_XDECREF(openmm);
        return NULL;
    }
}

%apply int& OUTPUT { int& center, int& atom1, int& atom2, int& atom3 };

/*
 * A model file's bytes cross the language boundary as Python bytes (or any object with the buffer
 * protocol: bytearray, memoryview), copied into a std::string without decoding.  A str is refused,
 * since SWIG's default std::string conversion would UTF-8-encode it and corrupt binary data.
 */
%typemap(typecheck, precedence=SWIG_TYPECHECK_STRING) const std::string& modelData {
    /* A str is let through here so that the conversion below refuses it with a clear message. */
    $1 = PyObject_CheckBuffer($input) || PyUnicode_Check($input);
}
%typemap(in) const std::string& modelData (std::string bytes) {
    Py_buffer view;
    if (PyUnicode_Check($input) || PyObject_GetBuffer($input, &view, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "the model data must be bytes (the contents of a model file)");
        SWIG_fail;
    }
    bytes.assign((const char*) view.buf, view.len);
    PyBuffer_Release(&view);
    $1 = &bytes;
}
%typemap(freearg) const std::string& modelData ""

%pythonappend TimewarpPlugin::TimewarpIntegrator::getTemperature() const %{
    val = unit.Quantity(val, unit.kelvin)
%}
%pythonappend TimewarpPlugin::TimewarpIntegrator::getModelTemperature() const %{
    val = unit.Quantity(val, unit.kelvin)
%}
%pythonappend TimewarpPlugin::TimewarpIntegrator::getModelLagTime() const %{
    val = unit.Quantity(val, unit.picosecond)
%}
%pythonappend TimewarpPlugin::TimewarpIntegrator::getHMCStepSize() const %{
    val = unit.Quantity(val, unit.picosecond)
%}
%pythonappend TimewarpPlugin::TimewarpIntegrator::getModelRecommendedHMCStepSize() const %{
    val = unit.Quantity(val, unit.picosecond)
%}
%pythonappend TimewarpPlugin::TimewarpIntegrator::getHMCMinimumMass() const %{
    val = unit.Quantity(val, unit.dalton)
%}
%pythonappend TimewarpPlugin::TimewarpIntegrator::getModelRecommendedHMCMinimumMass() const %{
    val = unit.Quantity(val, unit.dalton)
%}
%pythonappend TimewarpPlugin::TimewarpIntegrator::getExplorationEnergyThreshold() const %{
    val = unit.Quantity(val, unit.kilojoule_per_mole)
%}

%newobject TimewarpPlugin::TimewarpIntegrator::_clone;
%newobject TimewarpPlugin::TimewarpIntegrator::_deserialize;

namespace TimewarpPlugin {

class TimewarpIntegrator : public OpenMM::Integrator {
public:
    TimewarpIntegrator(const std::string& modelFile, const std::vector<std::string>& elements, double temperature);
    TimewarpIntegrator(const std::string& modelData, const std::vector<std::string>& elements, double temperature,
                       const std::string& modelFile);
    const std::string& getModelFile() const;
    const std::vector<std::string>& getElements() const;
    double getTemperature() const;
    void setTemperature(double temperature);
    bool getMetropolisHastings() const;
    void setMetropolisHastings(bool enabled);
    int getProposalsPerBatch() const;
    void setProposalsPerBatch(int proposals);
    bool getAdaptiveBatchSize() const;
    void setAdaptiveBatchSize(bool adaptive);
    double getExplorationEnergyThreshold() const;
    void setExplorationEnergyThreshold(double threshold);
    int getHMCInterval() const;
    void setHMCInterval(int interval);
    int getHMCSteps() const;
    void setHMCSteps(int steps);
    double getHMCStepSize() const;
    void setHMCStepSize(double stepSize);
    double getHMCMinimumMass() const;
    void setHMCMinimumMass(double mass);
    int addChiralCenter(int center, int atom1, int atom2, int atom3);
    int getNumChiralCenters() const;
    void getChiralCenterParameters(int index, int& center, int& atom1, int& atom2, int& atom3) const;
    int getRandomNumberSeed() const;
    void setRandomNumberSeed(int seed);
    long long getNumProposed() const;
    long long getNumAccepted() const;
    double getAcceptanceRate() const;
    long long getNumHMCProposed() const;
    long long getNumHMCAccepted() const;
    double getHMCAcceptanceRate() const;
    void resetStatistics();
    double getModelLagTime() const;
    double getModelTemperature() const;
    bool getModelHasDensity() const;
    const std::vector<std::string>& getModelElements() const;
    int getModelRecommendedHMCInterval() const;
    int getModelRecommendedHMCSteps() const;
    double getModelRecommendedHMCStepSize() const;
    double getModelRecommendedHMCMinimumMass() const;
    bool getModelNeedsFastCoordinateMoves() const;
    bool getSystemHasCustomGBForce() const;
    virtual void step(int steps);

    %extend {
        /* The bytes of the model file, as Python bytes. */
        PyObject* getModelData() const {
            const std::string& data = $self->getModelData();
            return PyBytes_FromStringAndSize(data.data(), data.size());
        }

        /* Casting, as for OpenMM's own classes, e.g. of Context.getIntegrator(). */
        static TimewarpPlugin::TimewarpIntegrator& cast(OpenMM::Integrator& integrator) {
            TimewarpPlugin::TimewarpIntegrator* result = dynamic_cast<TimewarpPlugin::TimewarpIntegrator*>(&integrator);
            if (result == NULL)
                throw OpenMM::OpenMMException("TimewarpIntegrator: the Integrator is not a TimewarpIntegrator");
            return *result;
        }

        static bool isinstance(OpenMM::Integrator& integrator) {
            return dynamic_cast<TimewarpPlugin::TimewarpIntegrator*>(&integrator) != NULL;
        }

        /* A new, unbound copy made through the serialization proxy (for copy.deepcopy). */
        static TimewarpPlugin::TimewarpIntegrator* _clone(const TimewarpPlugin::TimewarpIntegrator& other) {
            return dynamic_cast<TimewarpPlugin::TimewarpIntegrator*>(OpenMM::XmlSerializer::clone<OpenMM::Integrator>(other));
        }

        /* Reconstruct an integrator from XmlSerializer output (for pickle). */
        static TimewarpPlugin::TimewarpIntegrator* _deserialize(const std::string& xml) {
            std::stringstream stream(xml);
            OpenMM::Integrator* integrator = OpenMM::XmlSerializer::deserialize<OpenMM::Integrator>(stream);
            TimewarpPlugin::TimewarpIntegrator* result = dynamic_cast<TimewarpPlugin::TimewarpIntegrator*>(integrator);
            if (result == NULL) {
                delete integrator;
                throw OpenMM::OpenMMException("TimewarpIntegrator: the XML does not describe a TimewarpIntegrator");
            }
            return result;
        }
    }
};

}
