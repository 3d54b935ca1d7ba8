// The PACS round trip against a real Orthanc (Debian package `orthanc`, support/orthanc.h) on
// 127.0.0.1 with a temporary configuration and database: store series (one JPEG 2000), find them, retrieve them
// with C-GET and C-MOVE, segment a study straight from the PACS and store its DICOM SEG back,
// find the SEG; and the failures: a refused association, a silent peer, an unknown study.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <thread>

#include "sagitta/dicom/load.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/seg.h"
#include "support/dicom_fixups.h"
#include "support/orthanc.h"
#include "support/synthetic_dicom.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace st = sagitta::testing;

std::string sagitta(const std::string& args) { return fmt::format("'{}' {}", st::sagitta_executable().string(), args); }

class Orthanc : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    // ctest runs each test case as its own process, in parallel: every process starts its own
    // Orthanc in its own folder (a shared one was removed under a running neighbour).
    move_port_ = st::free_port();
    server_ = std::make_unique<st::OrthancServer>();
    dir_ = st::binary_dir() / "test_scratch" / ("orthanc-" + std::to_string(::getpid()));
    ready_ = server_->start(dir_,
                            {{"DicomModalities", {{"sagitta", {"SAGITTA", "127.0.0.1", move_port_}}}}});
    port_ = server_->dicom_port();
  }

  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    if (!st::OrthancServer::installed())
      GTEST_SKIP() << "Orthanc not installed (Debian package orthanc; scripts/setup.sh installs it)";
    ASSERT_TRUE(ready_) << "Orthanc did not start; see " << server_->logs();
  }

  std::string peer() const { return fmt::format("--port {} --aec ORTHANC --timeout 5 --dimse-timeout 30", port_); }

  // Runs `sagitta pacs ... --json` and returns the parsed JSON (fails the test on error).
  nlohmann::json pacs(const std::string& args) {
    const auto r = st::run_command(sagitta(fmt::format("pacs {} {} --json", args, peer())));
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    try {
      return nlohmann::json::parse(r.out);
    } catch (...) {
      ADD_FAILURE() << "not JSON: " << r.out;
      return {};
    }
  }

  // The JPEG 2000 CT, with the SOP UIDs the anonymised files keep only in their meta header
  // copied into the dataset (a PACS indexes instances by them).
  fs::path j2k_series() {
    const auto root = st::external_data();
    if (!root || !fs::exists(*root / "ct/totalsegmentator/example_ct_dicom")) return {};
    const fs::path out = dir_ / "j2k";
    if (fs::exists(out)) return out;
    fs::create_directories(out);
    // The anonymised files also have empty study and series UIDs, which a PACS needs to file
    // them: give them fixed ones (the JPEG 2000 pixel data is untouched).
    for (const auto& e : fs::directory_iterator(*root / "ct/totalsegmentator/example_ct_dicom")) {
      const fs::path copy = out / e.path().filename();
      if (st::copy_with_sop_uids(e.path(), copy).empty()) return {};
      st::set_attribute(copy, "0020,000d", "1.2.826.0.1.3680043.8.498.4711.1");
      st::set_attribute(copy, "0020,000e", "1.2.826.0.1.3680043.8.498.4711.2");
      st::set_attribute(copy, "0010,0020", "TS-EXAMPLE");
    }
    return out;
  }

  static inline fs::path dir_;
  static inline std::unique_ptr<st::OrthancServer> server_;
  static inline int port_ = 0, move_port_ = 0;
  static inline bool ready_ = false;
};

TEST_F(Orthanc, StoreFindGetMoveThePhantomSeries) {
  const fs::path phantom = st::source_dir() / "testdata" / "demo" / "ct_phantom";
  const auto scan = dcm::scan({phantom});
  const auto& info = scan.stacks.front().info;
  const std::size_t n = scan.stacks.front().frames.size();

  auto stored = pacs(fmt::format("store '{}'", phantom.string()));
  EXPECT_EQ(stored["sent"].get<std::size_t>(), n);

  auto found = pacs(fmt::format("find --level series --study {}", info.study_instance_uid));
  ASSERT_EQ(found["matches"].size(), 1u);
  EXPECT_EQ(found["matches"][0]["SeriesInstanceUID"], info.series_instance_uid);
  EXPECT_EQ(found["matches"][0]["NumberOfSeriesRelatedInstances"], std::to_string(n));
  auto studies = pacs(fmt::format("find --level study --patient-id '{}'", info.patient_id));
  ASSERT_GE(studies["matches"].size(), 1u);

  const fs::path scratch = st::scratch_dir();
  const fs::path got = scratch / "get";
  auto get = pacs(fmt::format("get --study {} -o '{}'", info.study_instance_uid, got.string()));
  EXPECT_EQ(get["files"].size(), n);
  const fs::path moved = scratch / "move";
  auto move = pacs(fmt::format("move --study {} --series {} --move-port {} --aet SAGITTA -o '{}'", info.study_instance_uid,
                               info.series_instance_uid, move_port_, moved.string()));
  EXPECT_EQ(move["files"].size(), n);

  // What came back is what went out, voxel for voxel.
  const auto original = dcm::load(dcm::select_stack(scan, ""));
  for (const fs::path& folder : {got, moved}) {
    const auto back = dcm::load(dcm::select_stack(dcm::scan({folder}), ""));
    const auto& a = *original.volumes.front();
    const auto& b = *back.volumes.front();
    ASSERT_EQ(a.GetLargestPossibleRegion(), b.GetLargestPossibleRegion());
    std::size_t different = 0;
    for (std::size_t i = 0; i < a.GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
      different += a.GetBufferPointer()[i] != b.GetBufferPointer()[i];
    EXPECT_EQ(different, 0u) << folder;
    // Nothing is left in staging folders.
    for (const auto& e : fs::directory_iterator(folder)) EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  }
}

TEST_F(Orthanc, Jpeg2000StudyIsRetrievedAsSentSegmentedAndItsSegStoredBack) {
  const fs::path j2k = j2k_series();
  if (j2k.empty()) GTEST_SKIP() << "external data 'ct/totalsegmentator/example_ct_dicom' not found";
  const auto scan = dcm::scan({j2k});
  const auto& info = scan.stacks.front().info;
  auto stored = pacs(fmt::format("store '{}'", j2k.string()));
  EXPECT_EQ(stored["sent"].get<std::size_t>(), 20u);
  EXPECT_TRUE(stored["warnings"].empty()) << stored["warnings"].dump();  // sent as JPEG 2000, not decompressed

  // C-GET accepts JPEG 2000 and keeps it; our codec decodes it on load.
  const fs::path scratch = st::scratch_dir();
  const fs::path got = scratch / "get";
  auto get = pacs(fmt::format("get --study {} --series {} -o '{}'", info.study_instance_uid, info.series_instance_uid,
                              got.string()));
  EXPECT_EQ(get["files"].size(), 20u);
  EXPECT_EQ(get["transfer_syntaxes"], nlohmann::json::array({"1.2.840.10008.1.2.4.90"}));
  const auto original = dcm::load(dcm::select_stack(scan, ""));
  const auto back = dcm::load(dcm::select_stack(dcm::scan({got}), ""));
  std::size_t different = 0;
  const auto& a = *original.volumes.front();
  for (std::size_t i = 0; i < a.GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    different += a.GetBufferPointer()[i] != back.volumes.front()->GetBufferPointer()[i];
  EXPECT_EQ(different, 0u);

  // Pull, segment, store the SEG back: one command.
  const fs::path out = scratch / "segment";
  const fs::path card = st::source_dir() / "testdata" / "models" / "demo" / "model.json";
  const auto r = st::run_command(sagitta(fmt::format(
      "segment --pacs ORTHANC@127.0.0.1:{} --study {} --model '{}' -o '{}' --threads 2 --json --no-progress", port_,
      info.study_instance_uid, card.string(), out.string())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  ASSERT_TRUE(report["dicom"]["seg"].is_object()) << report["dicom"].dump();
  EXPECT_EQ(report["dicom"]["seg"]["stored"], 1);
  ASSERT_TRUE(fs::exists(out / "seg.dcm"));
  for (const auto& e : fs::directory_iterator(out)) EXPECT_NE(e.path().filename().string()[0], '.') << e.path();

  // The SEG references the series, and the PACS now lists it in the study.
  dcm::ReadSegOptions ro;
  ro.reference_grid = original.volumes.front().GetPointer();
  ro.reference = &original.info;
  const auto seg = dcm::read_seg(out / "seg.dcm", ro);
  EXPECT_EQ(seg.referenced_series_uid, info.series_instance_uid);
  EXPECT_EQ(seg.study_instance_uid, info.study_instance_uid);
  auto found = pacs(fmt::format("find --level series --study {} --modality SEG", info.study_instance_uid));
  ASSERT_EQ(found["matches"].size(), 1u);
  EXPECT_EQ(found["matches"][0]["SeriesInstanceUID"], report["dicom"]["seg"]["series_instance_uid"]);
}

TEST_F(Orthanc, RefusedSilentAndEmptyAnswersAreOneLineErrorsWithNothingWritten) {
  const fs::path out = st::scratch_dir();
  // An AE title the PACS does not know: Orthanc refuses to talk to it.
  auto r = st::run_command(sagitta(fmt::format("pacs echo --port {} --aec ORTHANC --aet STRANGER --timeout 5", port_)));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("ORTHANC@127.0.0.1"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  // Store refused before anything is sent: a file that is not DICOM among good ones.
  fs::create_directories(out / "mixed");
  fs::copy(st::source_dir() / "testdata" / "demo" / "ct_phantom" / "ct_phantom_0000.dcm", out / "mixed" / "a.dcm");
  std::ofstream(out / "mixed" / "b.dcm") << "not dicom";
  r = st::run_command(sagitta(fmt::format("pacs store '{}' {}", (out / "mixed").string(), peer())));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("not a readable DICOM file"), std::string::npos) << r.err;

  // A peer that accepts the TCP connection but never answers: a timeout, not a hang.
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(s, 4);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  const auto t0 = std::chrono::steady_clock::now();
  r = st::run_command(sagitta(fmt::format("pacs echo --port {} --aec SILENT --timeout 2", ntohs(a.sin_port))));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(s);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_LT(seconds, 20.0);
  EXPECT_NE(r.err.find("did not answer"), std::string::npos) << r.err;

  // Nothing to retrieve: an error, and no files or staging folders left behind.
  r = st::run_command(sagitta(fmt::format("pacs get --study 1.2.3.4.5.6.7.8.9 -o '{}' {}", (out / "get").string(), peer())));
  EXPECT_EQ(r.exit_code, 3);
  if (fs::exists(out / "get")) {
    EXPECT_TRUE(fs::is_empty(out / "get"));
  }
}

}  // namespace
