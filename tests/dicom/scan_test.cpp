// What scan() tolerates in real folders: copies of the same instance, files without preamble or
// meta header, and files that are not DICOM at all.
#include <gtest/gtest.h>

#include <dcmtk/dcmdata/dcfilefo.h>

#include <fstream>

#include "sagitta/dicom/load.h"
#include "sagitta/dicom/scan.h"
#include "support/synthetic_dicom.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;

sagitta::testing::SeriesSpec small_series() {
  sagitta::testing::SeriesSpec spec;
  spec.rows = spec.columns = 12;
  spec.slices = 4;
  spec.markers = {{{-10, -10, -14}, 1.5, 500}};
  return spec;
}

TEST(Scan, ACopiedInstanceIsReadOnce) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto files = sagitta::testing::write_series(small_series(), dir / "series");
  fs::create_directories(dir / "backup");
  fs::copy_file(files.front(), dir / "backup" / "copy.dcm");
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 1u);
  EXPECT_EQ(scan.stacks.front().frames.size(), 4u);
  EXPECT_EQ(scan.files_seen, 5u);
  EXPECT_EQ(scan.files_used, 4u);
  bool reported = false;
  for (const auto& d : scan.decisions) reported |= d.what.find("duplicate of instance") != std::string::npos;
  EXPECT_TRUE(reported);
  EXPECT_EQ(dcm::load(scan.stacks.front()).volumes.front()->GetLargestPossibleRegion().GetSize()[2], 4u);
}

// Old archives hold bare datasets: no 128-byte preamble, no "DICM", no meta header.
TEST(Scan, FilesWithoutPreambleOrMetaHeaderLoad) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto files = sagitta::testing::write_series(small_series(), dir / "with_meta");
  fs::create_directories(dir / "bare");
  for (std::size_t i = 0; i < files.size(); ++i) {
    DcmFileFormat ff;
    ASSERT_TRUE(ff.loadFile(files[i].c_str()).good());
    const E_TransferSyntax xfer = i % 2 ? EXS_LittleEndianImplicit : EXS_LittleEndianExplicit;
    ASSERT_TRUE(ff.getDataset()->saveFile((dir / "bare" / ("f" + std::to_string(i))).c_str(), xfer).good());
  }
  std::ifstream bare(dir / "bare" / "f0", std::ios::binary);
  char head[132] = {};
  bare.read(head, sizeof head);
  ASSERT_NE(std::string(head + 128, 4), "DICM") << "the test file still has a preamble";

  const auto a = dcm::load(dcm::select_stack(dcm::scan({dir / "with_meta"}), ""));
  const auto b = dcm::load(dcm::select_stack(dcm::scan({dir / "bare"}), ""));
  const auto& x = *a.volumes.front();
  const auto& y = *b.volumes.front();
  ASSERT_EQ(x.GetLargestPossibleRegion(), y.GetLargestPossibleRegion());
  EXPECT_EQ(x.GetOrigin(), y.GetOrigin());
  EXPECT_EQ(x.GetDirection(), y.GetDirection());
  for (std::size_t i = 0; i < x.GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    ASSERT_EQ(x.GetBufferPointer()[i], y.GetBufferPointer()[i]) << i;
}

TEST(Scan, NonDicomFilesAreSkippedWithAReason) {
  const fs::path dir = sagitta::testing::scratch_dir();
  sagitta::testing::write_series(small_series(), dir);
  std::ofstream(dir / "notes.txt") << "radiology report draft\n";
  std::ofstream(dir / "empty.dcm");
  std::ofstream(dir / "binary.bin", std::ios::binary) << std::string(300, '\x07');
  const auto scan = dcm::scan({dir});
  EXPECT_EQ(scan.stacks.size(), 1u);
  EXPECT_EQ(scan.files_used, 4u);
  std::size_t skipped = 0;
  for (const auto& d : scan.decisions) skipped += d.what.rfind("skipped:", 0) == 0;
  EXPECT_EQ(skipped, 3u);
}

}  // namespace
