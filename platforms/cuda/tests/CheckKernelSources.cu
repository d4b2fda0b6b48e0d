/*
 * Compiles the run-time kernels ahead of time with nvcc, for one precision mode per build (the
 * build passes -DUSE_MIXED_PRECISION or -DUSE_DOUBLE_PRECISION), so that a syntax or type error
 * shows up on a machine without a GPU rather than at the first Context on one.  The definitions
 * below are the ones CudaContext puts before every module it compiles.
 */
#ifdef USE_DOUBLE_PRECISION
typedef double real;
typedef double4 real4;
#define make_real4 make_double4
#else
typedef float real;
typedef float4 real4;
#define make_real4 make_float4
#endif
#include "timewarp.cu"
