#pragma once
// Which SIMD code the kernels compile.  The x86-64 paths (AVX2/FMA, AVX-512, F16C) are built
// for GCC/Clang on x86-64 and chosen at run time (cpu checks or target_clones), so one binary
// runs on every x86-64 CPU.  Elsewhere — or with DEEPSHOP_NO_X86_SIMD, which lets the tests run
// the portable fallbacks on an x86 machine too — only plain C++ is compiled.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(DEEPSHOP_NO_X86_SIMD)
#define DEEPSHOP_X86_SIMD 1
#define DEEPSHOP_CLONES(...) __attribute__((target_clones(__VA_ARGS__)))
#else
#define DEEPSHOP_X86_SIMD 0
#define DEEPSHOP_CLONES(...)
#endif
