// Seeded, counter-based random numbers that are bit-identical on the CPU and on CUDA.
//
// A value is a pure function of (seed, counter): uniform01(seed, i). Kernels on either device
// compute element i's random number independently, so dropout masks and initialisations do not
// depend on thread scheduling or on the device. The Generator hands out counter ranges.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace lapis {

// SplitMix64 finaliser: a strong 64-bit mixer (Steele et al.), cheap on both devices.
LAPIS_HOST_DEVICE inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

LAPIS_HOST_DEVICE inline uint64_t random_bits(uint64_t seed, uint64_t counter) {
  return mix64(mix64(seed) ^ (counter * 0xD1B54A32D192ED03ull));
}

// Uniform in [0, 1) with 24 random bits (exactly representable in float and double).
LAPIS_HOST_DEVICE inline float uniform01(uint64_t seed, uint64_t counter) {
  return static_cast<float>(random_bits(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller from two independent uniforms; double precision inside so the
// CPU and CUDA results agree to the last bit of the float result.
LAPIS_HOST_DEVICE inline double normal01(uint64_t seed, uint64_t counter) {
  const double u1 = (static_cast<double>(random_bits(seed, 2 * counter) >> 11) + 1.0) *
                    (1.0 / 9007199254740992.0);  // (0, 1]
  const double u2 = static_cast<double>(random_bits(seed, 2 * counter + 1) >> 11) *
                    (1.0 / 9007199254740992.0);  // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// A seed plus a running counter. Each draw of n numbers takes the next n counters, so a sequence
// of draws is reproducible from the seed alone, and a checkpoint can save (seed, offset).
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }
  // Reserves n counters and returns the first.
  uint64_t advance(uint64_t n) { const uint64_t first = offset_; offset_ += n; return first; }
  float uniform() { return uniform01(seed_, advance(1)); }
  double normal() { return normal01(seed_, advance(1)); }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

}  // namespace lapis
