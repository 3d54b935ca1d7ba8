// Every minimised input a fuzzer ever crashed on (tests/fuzz/regressions/<harness>/) replayed
// through the same harness body, in the normal build (the sanitizer build replays them too, with
// ASan and UBSan watching). A file here is a bug that stays fixed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "harnesses.h"
#include "sagitta/dicom/codecs.h"

namespace {
namespace fs = std::filesystem;

TEST(FuzzRegressions, EveryMinimisedCrasherRunsCleanly) {
  sagitta::dicom::register_codecs();
  const fs::path root = SAGITTA_FUZZ_REGRESSIONS;
  std::size_t replayed = 0;
  for (const auto& h : sagitta::fuzz::harnesses()) {
    const fs::path dir = root / h.name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file() || e.path().filename() == "README.md") continue;
      std::ifstream in(e.path(), std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      SCOPED_TRACE(e.path().string());
      EXPECT_NO_THROW(h.run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
      ++replayed;
    }
  }
  std::cout << "[ NOTE ] replayed " << replayed << " minimised fuzz inputs\n";
}

}  // namespace
