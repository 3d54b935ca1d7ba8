// One libFuzzer executable per harness: SAGITTA_FUZZ_HARNESS names the body (harnesses.h).
#include <cstddef>
#include <cstdint>

#include "harnesses.h"
#include "sagitta/dicom/codecs.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sagitta::dicom::register_codecs();  // once, as the library does before any read
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sagitta::fuzz::SAGITTA_FUZZ_HARNESS(data, size);
}
