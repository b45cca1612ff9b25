// CUDA's built-in variables. The block scheduler sets them for the fiber it resumes (threadIdx)
// and for the block and launch it runs (blockIdx, blockDim, gridDim); they have the device's
// unsigned 32-bit types, so index arithmetic overflows where it would on a GPU.
#pragma once

#include <vector_types.h>

extern __thread uint3 threadIdx;
extern __thread uint3 blockIdx;
extern __thread dim3 blockDim;
extern __thread dim3 gridDim;
constexpr int warpSize = 32;
