#include "CudaIntegrateTimewarpStepKernel.h"
#include "CudaTimewarpKernelSources.h"
#include "ProposalModel.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"
#include <atomic>
#include <cmath>
#include <cstring>
#include <dlfcn.h>

using namespace TimewarpPlugin;
using namespace OpenMM;
using namespace std;

namespace {

/**
 * The few driver functions this kernel calls itself, looked up in libcuda.so.1 at run time.  The
 * driver library comes with the GPU driver, and libOpenMMCUDA.so has loaded it before any kernel
 * exists; not linking it means the plugin builds where no driver (or stub library) is installed.
 */
struct Driver {
    CUresult (*ctxPushCurrent)(CUcontext);
    CUresult (*ctxPopCurrent)(CUcontext*);
    CUresult (*ctxSynchronize)();
    CUresult (*primaryCtxRetain)(CUcontext*, CUdevice);
    CUresult (*primaryCtxRelease)(CUdevice);
};

template <class F>
void lookUp(void* library, const char* name, F& function) {
    function = (F) dlsym(library, name);
    if (function == NULL)
        throw OpenMMException(string("TimewarpIntegrator: the CUDA driver library has no function ") + name);
}

const Driver& driver() {
    static const Driver functions = []() {
        void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        if (library == NULL)
            library = dlopen("libcuda.so.1", RTLD_NOW);
        if (library == NULL)
            throw OpenMMException("TimewarpIntegrator: cannot load the CUDA driver library libcuda.so.1");
        Driver d;
        // The versioned names are what cuda.h maps the plain names to.
        lookUp(library, "cuCtxPushCurrent_v2", d.ctxPushCurrent);
        lookUp(library, "cuCtxPopCurrent_v2", d.ctxPopCurrent);
        lookUp(library, "cuCtxSynchronize", d.ctxSynchronize);
        lookUp(library, "cuDevicePrimaryCtxRetain", d.primaryCtxRetain);
        lookUp(library, "cuDevicePrimaryCtxRelease_v2", d.primaryCtxRelease);
        return d;
    }();
    return functions;
}

void check(CUresult result, const char* what) {
    if (result != CUDA_SUCCESS)
        throw OpenMMException(string("TimewarpIntegrator: ") + what + ": " + CudaContext::getErrorString(result));
}

atomic<long long> hostPositionCopies(0);

} // namespace

/**
 * Makes the device's primary context, which torch uses, current for a block of code.  OpenMM's own
 * calls inside the block push OpenMM's context on top of it and pop it again.
 */
class CudaIntegrateTimewarpStepKernel::TorchScope {
public:
    explicit TorchScope(CUcontext primary) {
        check(driver().ctxPushCurrent(primary), "cannot make the primary CUDA context current");
    }
    ~TorchScope() {
        CUcontext popped;
        driver().ctxPopCurrent(&popped);
    }
};

CudaIntegrateTimewarpStepKernel::CudaIntegrateTimewarpStepKernel(string name, const Platform& platform, CudaContext& cu) :
        CommonIntegrateTimewarpStepKernel(name, platform), cu(cu), primaryContext(NULL) {
    check(driver().primaryCtxRetain(&primaryContext, cu.getDevice()), "cannot retain the primary CUDA context");
}

CudaIntegrateTimewarpStepKernel::~CudaIntegrateTimewarpStepKernel() {
    {
        // Tensors are freed by torch's allocator, which expects its own context.
        TorchScope scope(primaryContext);
        deviceModel.reset();
        atomTypes = moveMasses = current = pending = chiralCenters = at::Tensor();
    }
    driver().primaryCtxRelease(cu.getDevice());
}

long long CudaIntegrateTimewarpStepKernel::getNumHostPositionCopies() {
    return hostPositionCopies.load();
}

void CudaIntegrateTimewarpStepKernel::initialize(const System& system, const TimewarpIntegrator& integrator) {
    TorchScope scope(primaryContext);
    // The common initialize() loads the model through selectModel() and seeds its generator (the
    // device's, for a model on the GPU) from the chain's stream.
    CommonIntegrateTimewarpStepKernel::initialize(system, integrator);
    at::TensorOptions options = at::TensorOptions().device(at::kCUDA, cu.getDeviceIndex());
    const vector<int64_t>& types = integrator.getAtomTypes();
    atomTypes = at::tensor(at::ArrayRef<int64_t>(types), at::kLong).to(options.device());
    synchronizeTorch();
    ContextSelector selector(cu);
    CUmodule module = cu.createModule(CudaTimewarpKernelSources::timewarp);
    gatherPositionsKernel = cu.getKernel(module, "gatherPositions");
    scatterPositionsKernel = cu.getKernel(module, "scatterPositions");
    gatherForcesKernel = cu.getKernel(module, "gatherForces");
}

ProposalModel& CudaIntegrateTimewarpStepKernel::selectModel(const TimewarpIntegrator& integrator) {
    // The integrator's own model stays on the CPU (it answers questions about the model); the chain
    // draws from a copy on this Context's device, loaded from the same bytes.
    string source = integrator.getModelFile().empty() ? "<model bytes>" : integrator.getModelFile();
    deviceModel = ProposalModel::loadFromBytes(integrator.getModelData(), source, "cuda:" + to_string(cu.getDeviceIndex()));
    return *deviceModel;
}

void CudaIntegrateTimewarpStepKernel::execute(ContextImpl& context, const TimewarpIntegrator& integrator, int steps) {
    TorchScope scope(primaryContext);
    CommonIntegrateTimewarpStepKernel::execute(context, integrator, steps);
}

void CudaIntegrateTimewarpStepKernel::createCheckpoint(ContextImpl& context, ostream& stream) const {
    TorchScope scope(primaryContext);
    CommonIntegrateTimewarpStepKernel::createCheckpoint(context, stream);
}

void CudaIntegrateTimewarpStepKernel::loadCheckpoint(ContextImpl& context, istream& stream) {
    TorchScope scope(primaryContext);
    CommonIntegrateTimewarpStepKernel::loadCheckpoint(context, stream);
}

void CudaIntegrateTimewarpStepKernel::synchronizeTorch() const {
    // Called with the primary context current: torch's work is done before OpenMM's kernels read it.
    check(driver().ctxSynchronize(), "synchronizing torch's CUDA work failed");
}

void CudaIntegrateTimewarpStepKernel::launch(CUfunction kernel, void** arguments) {
    // Synchronous, so that torch (in the other context) may read what the kernel wrote.
    ContextSelector selector(cu);
    cu.executeKernel(kernel, arguments, cu.getNumAtoms());
    check(driver().ctxSynchronize(), "a TimewarpIntegrator kernel failed");
}

at::Tensor CudaIntegrateTimewarpStepKernel::newPositions() const {
    return at::empty({cu.getNumAtoms(), 3}, at::TensorOptions().dtype(at::kDouble).device(at::kCUDA, cu.getDeviceIndex()));
}

at::Tensor CudaIntegrateTimewarpStepKernel::gatherPositions() {
    at::Tensor x = newPositions();
    synchronizeTorch();  // the allocation may reuse memory torch's queued work still reads
    CUdeviceptr xPointer = (CUdeviceptr) x.data_ptr<double>();
    // posqCorrection exists only in mixed precision; otherwise the kernel does not read it.
    CUdeviceptr correction = cu.getUseMixedPrecision() ? cu.getPosqCorrection().getDevicePointer() : cu.getPosq().getDevicePointer();
    int numAtoms = cu.getNumAtoms();
    void* arguments[] = {&cu.getPosq().getDevicePointer(), &correction, &cu.getAtomIndexArray().getDevicePointer(), &xPointer,
                         &numAtoms};
    launch(gatherPositionsKernel, arguments);
    return x;
}

void CudaIntegrateTimewarpStepKernel::scatterPositions(const at::Tensor& x, int64_t offset) {
    CUdeviceptr xPointer = (CUdeviceptr) (x.data_ptr<double>() + offset);
    CUdeviceptr correction = cu.getUseMixedPrecision() ? cu.getPosqCorrection().getDevicePointer() : cu.getPosq().getDevicePointer();
    int numAtoms = cu.getNumAtoms();
    void* arguments[] = {&cu.getPosq().getDevicePointer(), &correction, &cu.getAtomIndexArray().getDevicePointer(), &xPointer,
                         &numAtoms};
    launch(scatterPositionsKernel, arguments);
}

at::Tensor CudaIntegrateTimewarpStepKernel::gatherForces() {
    at::Tensor f = newPositions();
    synchronizeTorch();
    CUdeviceptr fPointer = (CUdeviceptr) f.data_ptr<double>();
    int numAtoms = cu.getNumAtoms(), paddedNumAtoms = cu.getPaddedNumAtoms();
    void* arguments[] = {&cu.getForce().getDevicePointer(), &cu.getAtomIndexArray().getDevicePointer(), &fPointer, &numAtoms,
                         &paddedNumAtoms};
    launch(gatherForcesKernel, arguments);
    return f;
}

bool CudaIntegrateTimewarpStepKernel::readCurrentState(ContextImpl& context) {
    at::Tensor x = gatherPositions();
    if (!at::isfinite(x).all().item<bool>())
        throw OpenMMException("TimewarpIntegrator: the positions in the Context contain NaN or infinite values");
    if (current.defined() && at::equal(x, current))
        return false;
    current = x;
    return true;
}

void CudaIntegrateTimewarpStepKernel::drawProposals(const TimewarpIntegrator& integrator, int numProposals) {
    at::Tensor logRatios;
    deviceModel->proposeTensors(current, atomTypes, numProposals, pending, logRatios);
    if (pending.device() != current.device()) {
        // A model that builds its output on another device (the CPU) still works, at the cost of a
        // copy per batch, which the copy counter shows.
        pending = pending.to(current.device());
        hostPositionCopies++;
    }
    // One copy to the host per batch: the log ratios and whether each proposal is finite.
    at::Tensor finite = at::isfinite(pending).reshape({numProposals, -1}).all(1).to(at::kDouble);
    at::Tensor host = at::stack({logRatios.to(finite.device()), finite}).to(at::kCPU);
    const double* values = host.data_ptr<double>();
    pendingLogRatios.assign(values, values + numProposals);
    pendingFinite.resize(numProposals);
    for (int i = 0; i < numProposals; i++)
        pendingFinite[i] = values[numProposals + i] != 0.0;
    synchronizeTorch();
}

bool CudaIntegrateTimewarpStepKernel::loadProposal(ContextImpl& context, int index) {
    if (!pendingFinite[index])
        return false;
    scatterPositions(pending, (int64_t) index * 3 * cu.getNumAtoms());
    return true;
}

at::Tensor CudaIntegrateTimewarpStepKernel::triple(const at::Tensor& x, const at::Tensor& centers) const {
    at::Tensor center = x.index_select(0, centers.select(1, 0));
    at::Tensor a = x.index_select(0, centers.select(1, 1)) - center;
    at::Tensor b = x.index_select(0, centers.select(1, 2)) - center;
    at::Tensor c = x.index_select(0, centers.select(1, 3)) - center;
    return (a * at::linalg_cross(b, c, 1)).sum(1);
}

bool CudaIntegrateTimewarpStepKernel::proposalPreservesChirality(const TimewarpIntegrator& integrator, int index) {
    int numCenters = integrator.getNumChiralCenters();
    if (numCenters == 0)
        return true;
    if (!chiralCenters.defined() || chiralCenters.size(0) != numCenters) {
        // Centres may be added after the Context was created; indices, not positions, are uploaded.
        vector<int64_t> indices(4 * numCenters);
        for (int i = 0; i < numCenters; i++) {
            int center, a, b, c;
            integrator.getChiralCenterParameters(i, center, a, b, c);
            indices[4 * i] = center;
            indices[4 * i + 1] = a;
            indices[4 * i + 2] = b;
            indices[4 * i + 3] = c;
        }
        chiralCenters = at::tensor(at::ArrayRef<int64_t>(indices), at::kLong).reshape({numCenters, 4}).to(current.device());
    }
    // As the common kernel: a product of triple products that is not positive is an inversion.
    at::Tensor product = triple(current, chiralCenters) * triple(pending[index], chiralCenters);
    return !(product <= 0).any().item<bool>();
}

void CudaIntegrateTimewarpStepKernel::acceptProposal(ContextImpl& context, int index) {
    // The Context's positions are the proposal at the Context's precision: they are the new state.
    current = gatherPositions();
}

void CudaIntegrateTimewarpStepKernel::restoreCurrentState(ContextImpl& context) {
    scatterPositions(current);
}

double CudaIntegrateTimewarpStepKernel::integrateTrajectory(ContextImpl& context, int groups, int steps, double dt,
                                                            const vector<Vec3>& v0, double& finalKinetic) {
    // Velocity Verlet as in the common kernel, with positions, velocities and forces on the device.
    // The initial velocities come from the chain's random stream on the host (one copy per move).
    at::TensorOptions options = at::TensorOptions().dtype(at::kDouble).device(current.device());
    at::Tensor v = at::from_blob((void*) v0.data(), {(int64_t) v0.size(), 3}, at::kDouble).to(options.device());
    at::Tensor x = current.clone();
    // The masses of this move (the System's raised to the minimum mass), uploaded again only when
    // the minimum mass changed.
    if (getHMCMasses() != uploadedMoveMasses) {
        uploadedMoveMasses = getHMCMasses();
        moveMasses = at::tensor(at::ArrayRef<double>(uploadedMoveMasses), at::kDouble).to(options.device()).reshape({-1, 1});
    }
    at::Tensor halfKick = (0.5 * dt) / moveMasses;
    context.calcForcesAndEnergy(true, false, groups);
    at::Tensor f = gatherForces();
    double potential = NAN;
    for (int step = 0; step < steps; step++) {
        v += f * halfKick;
        x += v * dt;
        synchronizeTorch();
        scatterPositions(x);
        try {
            potential = context.calcForcesAndEnergy(true, true, groups);
        }
        catch (const OpenMMException&) {
            potential = NAN;
        }
        if (!isfinite(potential))
            break;
        f = gatherForces();
        v += f * halfKick;
    }
    finalKinetic = (0.5 * moveMasses * v * v).sum().item<double>();
    return potential;
}

void CudaIntegrateTimewarpStepKernel::acceptTrajectory(ContextImpl& context) {
    current = gatherPositions();
}

void CudaIntegrateTimewarpStepKernel::getChainPositions(vector<Vec3>& currentPositions, int numPending,
                                                        vector<vector<Vec3> >& pendingPositions) const {
    // Checkpoints are the one place positions go to the host; the format is the common kernel's.
    int numAtoms = cu.getNumAtoms();
    currentPositions.assign(numAtoms, Vec3());
    pendingPositions.assign(numPending, vector<Vec3>(numAtoms));
    if (current.defined()) {
        at::Tensor host = current.to(at::kCPU).contiguous();
        memcpy(currentPositions.data(), host.data_ptr<double>(), 3 * numAtoms * sizeof(double));
        hostPositionCopies++;
    }
    if (numPending > 0) {
        at::Tensor host = pending.slice(0, 0, numPending).to(at::kCPU).contiguous();
        for (int i = 0; i < numPending; i++)
            memcpy(pendingPositions[i].data(), host.data_ptr<double>() + 3 * numAtoms * i, 3 * numAtoms * sizeof(double));
        hostPositionCopies++;
    }
}

void CudaIntegrateTimewarpStepKernel::setChainPositions(const vector<Vec3>& currentPositions,
                                                        const vector<vector<Vec3> >& pendingPositions) {
    int numAtoms = cu.getNumAtoms();
    at::TensorOptions options = at::TensorOptions().dtype(at::kDouble).device(at::kCUDA, cu.getDeviceIndex());
    if ((int) currentPositions.size() != numAtoms)
        throw OpenMMException("TimewarpIntegrator: the checkpoint's positions do not match the number of particles");
    current = at::from_blob((void*) currentPositions.data(), {numAtoms, 3}, at::kDouble).to(options.device());
    hostPositionCopies++;
    int numPending = pendingPositions.size();
    vector<double> values(3 * numAtoms * numPending);
    for (int i = 0; i < numPending; i++)
        memcpy(values.data() + 3 * numAtoms * i, pendingPositions[i].data(), 3 * numAtoms * sizeof(double));
    pending = at::from_blob(values.data(), {numPending, numAtoms, 3}, at::kDouble).to(options.device());
    if (numPending > 0)
        hostPositionCopies++;
    pendingFinite.resize(numPending);
    for (int i = 0; i < numPending; i++) {
        bool finite = true;
        for (const Vec3& p : pendingPositions[i])
            finite = finite && isfinite(p[0]) && isfinite(p[1]) && isfinite(p[2]);
        pendingFinite[i] = finite;
    }
    synchronizeTorch();
}
