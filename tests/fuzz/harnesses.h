#pragma once
// The bodies of Sagitta's fuzz harnesses, shared by the libFuzzer executables (fuzz_main.cpp)
// and by the regression suite that replays every minimised crasher in the normal build
// (regression_test.cpp). Each takes arbitrary bytes, must never crash, hang or leak, and may
// only fail through Sagitta's own exceptions, which it catches.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sagitta::fuzz {

using Harness = int (*)(const std::uint8_t* data, std::size_t size);

// DICOM header scanning: the bytes as one file in a folder, scan() and its JSON.
int header(const std::uint8_t* data, std::size_t size);
// Pixel decoding, every codec: scan() then load() of every stack the bytes make.
int pixels(const std::uint8_t* data, std::size_t size);
// Sagitta's JPEG 2000 decoder directly: 8 bytes of DICOM pixel description, then a codestream.
int j2k(const std::uint8_t* data, std::size_t size);
// DICOM SEG reading.
int seg(const std::uint8_t* data, std::size_t size);
// RTSTRUCT reading: ROIs and their planar contours filled into a fixed 1 mm grid.
int rtstruct(const std::uint8_t* data, std::size_t size);
// NRRD and NIfTI headers (first byte: 0 NRRD, 1 NIfTI, 2 gzipped NIfTI, else MHA), read_volume().
int volume(const std::uint8_t* data, std::size_t size);
// Character-set conversion: charset, a zero byte, then the text; output must be valid UTF-8.
int text(const std::uint8_t* data, std::size_t size);
// DICOMweb's multipart reader: a Content-Type line, then the body, fed in pieces whose size the
// body's first byte picks; the bytes handed out never exceed the body's.
int multipart(const std::uint8_t* data, std::size_t size);

struct Entry {
  const char* name;
  Harness run;
};
const std::vector<Entry>& harnesses();

}  // namespace sagitta::fuzz
