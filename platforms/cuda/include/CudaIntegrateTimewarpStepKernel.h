#ifndef OPENMM_TIMEWARP_CUDAINTEGRATETIMEWARPSTEPKERNEL_H_
#define OPENMM_TIMEWARP_CUDAINTEGRATETIMEWARPSTEPKERNEL_H_

#include "CommonTimewarpKernels.h"
#include "openmm/cuda/CudaContext.h"
#include <ATen/ATen.h>
#include <memory>

namespace TimewarpPlugin {

/**
 * The Metropolis-Hastings chain of TimewarpIntegrator on OpenMM's CUDA platform.  The chain itself
 * (random streams, acceptance test, batching, hybrid Monte Carlo, checkpoints) is the common kernel's;
 * this class keeps what the common kernel keeps on the host on the GPU instead:
 *
 * - the model is loaded onto the Context's device and draws proposals from a tensor there;
 * - the current state and the pending batch are float64 tensors on the device, in the System's atom
 *   order; small kernels copy one of them into the Context's posq (and posqCorrection in mixed
 *   precision), or the Context's positions back, through OpenMM's atom reordering;
 * - hybrid Monte Carlo trajectories integrate on the device, from the Context's fixed-point forces.
 *
 * What crosses to the host per batch is the log ratios and a finiteness flag per proposal; per
 * proposal, the energy OpenMM returns; per hybrid Monte Carlo move, the initial velocities (drawn
 * by the chain's random stream, as on every platform) and the final kinetic energy.  Positions cross
 * only in checkpoints; getNumHostPositionCopies() counts such copies, for tests.
 *
 * Torch uses the device's primary CUDA context, OpenMM a context of its own: every call into torch
 * runs with the primary context current, every kernel of this class with OpenMM's, and each side
 * synchronizes before the other reads what it wrote (as openmm-torch does).
 */
class CudaIntegrateTimewarpStepKernel : public CommonIntegrateTimewarpStepKernel {
public:
    /**
     * Create the kernel.
     *
     * @param name      the kernel's name
     * @param platform  the CUDA platform
     * @param cu        the CudaContext of the Context this kernel belongs to
     */
    CudaIntegrateTimewarpStepKernel(std::string name, const OpenMM::Platform& platform, OpenMM::CudaContext& cu);
    ~CudaIntegrateTimewarpStepKernel();
    /**
     * Initialize the kernel: load the model onto the Context's device, compile the kernels, upload
     * the atom types.
     *
     * @param system      the System this kernel will be applied to
     * @param integrator  the TimewarpIntegrator this kernel will be used for
     */
    void initialize(const OpenMM::System& system, const TimewarpIntegrator& integrator);
    /**
     * Take a number of Metropolis-Hastings steps (see CommonIntegrateTimewarpStepKernel::execute()).
     *
     * @param context     the context in which to execute this kernel
     * @param integrator  the TimewarpIntegrator this kernel is being used for
     * @param steps       the number of steps
     */
    void execute(OpenMM::ContextImpl& context, const TimewarpIntegrator& integrator, int steps);
    /** Write the chain's state to a checkpoint, in the same format as the common kernel. */
    void createCheckpoint(OpenMM::ContextImpl& context, std::ostream& stream) const;
    /** Restore the chain's state from a checkpoint written by createCheckpoint(). */
    void loadCheckpoint(OpenMM::ContextImpl& context, std::istream& stream);
    /**
     * The number of times any CudaIntegrateTimewarpStepKernel in this process copied a set of
     * positions between the host and the device (only checkpoints do).  A test hook: the hot path
     * must leave it unchanged.
     */
    static long long getNumHostPositionCopies();
protected:
    ProposalModel& selectModel(const TimewarpIntegrator& integrator);
    bool readCurrentState(OpenMM::ContextImpl& context);
    void drawProposals(const TimewarpIntegrator& integrator, int numProposals);
    bool loadProposal(OpenMM::ContextImpl& context, int index);
    bool proposalPreservesChirality(const TimewarpIntegrator& integrator, int index);
    void acceptProposal(OpenMM::ContextImpl& context, int index);
    void restoreCurrentState(OpenMM::ContextImpl& context);
    double integrateTrajectory(OpenMM::ContextImpl& context, int groups, int steps, double dt,
                               const std::vector<OpenMM::Vec3>& v0, double& finalKinetic);
    void acceptTrajectory(OpenMM::ContextImpl& context);
    void getChainPositions(std::vector<OpenMM::Vec3>& current, int numPending,
                           std::vector<std::vector<OpenMM::Vec3> >& pending) const;
    void setChainPositions(const std::vector<OpenMM::Vec3>& current, const std::vector<std::vector<OpenMM::Vec3> >& pending);
private:
    class TorchScope;
    at::Tensor newPositions() const;
    at::Tensor gatherPositions();
    void scatterPositions(const at::Tensor& x, int64_t offset = 0);
    at::Tensor gatherForces();
    void launch(CUfunction kernel, void** arguments);
    void synchronizeTorch() const;
    at::Tensor triple(const at::Tensor& x, const at::Tensor& centers) const;
    OpenMM::CudaContext& cu;
    CUcontext primaryContext;
    std::shared_ptr<ProposalModel> deviceModel;
    CUfunction gatherPositionsKernel, scatterPositionsKernel, gatherForcesKernel;
    // On the device: atom types (N,), the masses of hybrid Monte Carlo moves (N, 1), the current
    // state (N, 3), the pending batch (B, N, 3) and the chiral centres (K, 4).  The end point of a
    // trajectory is in the Context.
    at::Tensor atomTypes, moveMasses, current, pending, chiralCenters;
    // The host copy of moveMasses, to upload them again only when they change.
    std::vector<double> uploadedMoveMasses;
    // On the host, one entry per pending proposal: whether all its coordinates are finite.
    std::vector<bool> pendingFinite;
};

} // namespace TimewarpPlugin

#endif /*OPENMM_TIMEWARP_CUDAINTEGRATETIMEWARPSTEPKERNEL_H_*/
