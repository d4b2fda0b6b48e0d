/*
 * Kernels that move positions between OpenMM's posq array and the chain's tensors, which hold
 * positions in float64, in the System's atom order, (N, 3) row-major.  CudaContext compiles them at
 * run time, defining real4/make_real4 and USE_MIXED_PRECISION or USE_DOUBLE_PRECISION for the
 * Context's precision.  OpenMM sorts atoms for locality: posq[i] holds atom atomIndex[i].
 */

/** x[atom] = the position OpenMM holds for atom, as getPositions() would return it. */
extern "C" __global__ void gatherPositions(const real4* __restrict__ posq, const real4* __restrict__ posqCorrection,
                                           const int* __restrict__ atomIndex, double* __restrict__ x, int numAtoms) {
    for (int i = blockIdx.x*blockDim.x+threadIdx.x; i < numAtoms; i += blockDim.x*gridDim.x) {
        int atom = atomIndex[i];
        real4 p = posq[i];
#ifdef USE_MIXED_PRECISION
        // Mixed precision keeps the rounding error of the float position in posqCorrection.
        real4 c = posqCorrection[i];
        x[3*atom] = (double) p.x + (double) c.x;
        x[3*atom+1] = (double) p.y + (double) c.y;
        x[3*atom+2] = (double) p.z + (double) c.z;
#else
        x[3*atom] = p.x;
        x[3*atom+1] = p.y;
        x[3*atom+2] = p.z;
#endif
    }
}

/** posq of every atom = x[atom], as setPositions() would store it; charges (w) are kept. */
extern "C" __global__ void scatterPositions(real4* __restrict__ posq, real4* __restrict__ posqCorrection,
                                            const int* __restrict__ atomIndex, const double* __restrict__ x, int numAtoms) {
    for (int i = blockIdx.x*blockDim.x+threadIdx.x; i < numAtoms; i += blockDim.x*gridDim.x) {
        int atom = atomIndex[i];
        double px = x[3*atom], py = x[3*atom+1], pz = x[3*atom+2];
        real4 p = posq[i];
#ifdef USE_MIXED_PRECISION
        p.x = (float) px;
        p.y = (float) py;
        p.z = (float) pz;
        posqCorrection[i] = make_real4((float) (px-(double) p.x), (float) (py-(double) p.y), (float) (pz-(double) p.z), 0);
#else
        p.x = (real) px;
        p.y = (real) py;
        p.z = (real) pz;
#endif
        posq[i] = p;
    }
}

/** f[atom] = the force on atom, from OpenMM's 64-bit fixed-point force buffer. */
extern "C" __global__ void gatherForces(const long long* __restrict__ force, const int* __restrict__ atomIndex,
                                        double* __restrict__ f, int numAtoms, int paddedNumAtoms) {
    const double scale = 1.0/(double) 0x100000000;
    for (int i = blockIdx.x*blockDim.x+threadIdx.x; i < numAtoms; i += blockDim.x*gridDim.x) {
        int atom = atomIndex[i];
        f[3*atom] = scale*force[i];
        f[3*atom+1] = scale*force[i+paddedNumAtoms];
        f[3*atom+2] = scale*force[i+2*paddedNumAtoms];
    }
}
