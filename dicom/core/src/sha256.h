#pragma once
// SHA-256 (FIPS 180-4) of a byte stream. Small and dependency-free: model cards pin their weights
// by hash, and pulling in a crypto library for one digest is not worth it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sagitta::detail {

class Sha256 {
public:
  Sha256();
  void update(const void* data, std::size_t size);
  std::string hex();  // finishes the digest; call once

private:
  void block(const std::uint8_t* p);
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t length_ = 0;
};

}  // namespace sagitta::detail
