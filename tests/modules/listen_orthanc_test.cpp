// `sagitta listen` as a DICOM node between real peers: Orthanc (Debian package `orthanc`, started
// on 127.0.0.1 with a temporary configuration and its REST API) pushes a study to the node with
// C-STORE (`POST /modalities/<name>/store`), the node segments the series its rules choose and
// sends SEG, SR and RTSTRUCT back to Orthanc, whose REST API says what arrived; dciodvfy judges
// the SEG Orthanc received. DCMTK's storescp is the destination that is down and then comes up.
// SIGKILL at two points of a job, then restarts: every result arrives exactly once.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include "support/dicom_checks.h"
#include "support/dicom_fixups.h"
#include "support/orthanc.h"
#include "support/synthetic_dicom.h"
#include "support/test_paths.h"

extern char** environ;

namespace {
namespace fs = std::filesystem;
namespace st = sagitta::testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const fs::path kPhantom = st::source_dir() / "testdata" / "demo" / "ct_phantom";
const fs::path kCard = st::source_dir() / "testdata" / "models" / "phantom" / "model.json";
const fs::path kOtherCard = st::source_dir() / "testdata" / "models" / "demo" / "model.json";

// `sagitta listen` in the background, its stderr in a file.
class Listener {
public:
  Listener(fs::path config, fs::path log, std::string extra = "") : config_(std::move(config)), log_(std::move(log)), extra_(std::move(extra)) {}
  ~Listener() { kill(SIGKILL); }

  void start() {
    const std::size_t starts = count("listening as");  // the log may hold earlier runs
    // exec: the listener is this process id (the front execs sagitta-dicom in place too).
    const std::string command = fmt::format("exec {} listen {} {} 2>>{}", st::shell_quote(st::sagitta_executable()),
                                            st::shell_quote(config_), extra_, st::shell_quote(log_));
    std::vector<char*> argv{const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>(command.c_str()), nullptr};
    ASSERT_EQ(::posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, argv.data(), environ), 0);
    ASSERT_TRUE(wait_for("listening as", starts + 1, 20)) << log();
  }

  // Sends `signal`; returns the exit status (-1 when it did not end within 30 s).
  int kill(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    return -1;
  }

  std::string log() const { return st::read_file(log_); }
  std::size_t count(const std::string& text) const {
    const std::string l = log();
    std::size_t n = 0;
    for (std::size_t at = l.find(text); at != std::string::npos; at = l.find(text, at + 1)) ++n;
    return n;
  }
  // Waits until `text` occurs `times` times in the log.
  bool wait_for(const std::string& text, std::size_t times, double seconds) const {
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
      if (count(text) >= times) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

private:
  fs::path config_, log_;
  std::string extra_;
  pid_t pid_ = 0;
};

class Listen : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    listen_port_ = st::free_port();
    server_ = std::make_unique<st::OrthancServer>();
    json overrides = {{"HttpServerEnabled", true},
                      {"HttpPort", st::free_port()},
                      {"DicomModalities", {{"sagitta", {"SAGITTA", "127.0.0.1", listen_port_}}}}};
    // Its DICOMweb plugin (Debian orthanc-dicomweb), when installed, receives STOW-RS results.
    dicomweb_ = ::access(st::kOrthancDicomWebPlugin, R_OK) == 0;
    if (dicomweb_) {
      overrides["Plugins"] = {st::kOrthancDicomWebPlugin};
      overrides["DicomWeb"] = {{"Enable", true}, {"Root", "/dicom-web/"}};
    }
    ready_ = server_->start(st::binary_dir() / "test_scratch" / ("orthanc-listen-" + std::to_string(::getpid())),
                            overrides);
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    if (!st::OrthancServer::installed())
      GTEST_SKIP() << "Orthanc not installed (Debian package orthanc; scripts/setup.sh installs it)";
    if (st::run_command("curl --version").exit_code != 0) GTEST_SKIP() << "curl not installed (Orthanc's REST API)";
    ASSERT_TRUE(ready_) << "Orthanc did not start; see " << server_->logs();
    dir_ = st::scratch_dir();
  }

  // A fresh copy of the demo study (own Study and Series UIDs) with two series: the CT phantom
  // and three of its slices relabelled MR, which the rules must skip. Stored in Orthanc; returns
  // Orthanc's study id.
  std::string study_in_orthanc() {
    const std::string root = fmt::format("1.2.826.0.1.3680043.8.498.{}.{}", ::getpid(), ++studies_);
    study_uid_ = root + ".1";
    const fs::path ct = dir_ / "study" / "ct", mr = dir_ / "study" / "mr";
    fs::create_directories(ct);
    fs::create_directories(mr);
    int i = 0;
    for (const auto& e : fs::directory_iterator(kPhantom)) {
      fs::copy_file(e.path(), ct / e.path().filename());
      st::set_attribute(ct / e.path().filename(), "0020,000d", study_uid_);
      st::set_attribute(ct / e.path().filename(), "0020,000e", root + ".2");
      if (i++ < 3) {
        fs::copy_file(e.path(), mr / e.path().filename());
        st::set_attribute(mr / e.path().filename(), "0020,000d", study_uid_);
        st::set_attribute(mr / e.path().filename(), "0020,000e", root + ".3");
        st::set_attribute(mr / e.path().filename(), "0008,0060", "MR");
      }
    }
    const auto r = st::run_command(fmt::format("{} pacs store {} {} --port {} --aec ORTHANC --json",
                                               st::shell_quote(st::sagitta_executable()), st::shell_quote(ct),
                                               st::shell_quote(mr), server_->dicom_port()));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const json found = server_->rest_json("POST", "/tools/lookup", study_uid_);
    for (const auto& f : found)
      if (f["Type"] == "Study") return f["ID"];
    ADD_FAILURE() << "Orthanc does not list the study: " << found.dump();
    return "";
  }

  // Orthanc pushes the study to the node (synchronously: returns when it has been sent).
  void push(const std::string& study) {
    const std::string answer = server_->rest("POST", "/modalities/sagitta/store", study);
    ASSERT_NE(answer, "") << "Orthanc could not send the study to the node";
  }

  // Instances per modality in Orthanc's copy of the study.
  std::map<std::string, std::size_t> modalities(const std::string& study) {
    std::map<std::string, std::size_t> n;
    for (const auto& s : server_->rest_json("GET", "/studies/" + study + "/series"))
      n[s["MainDicomTags"]["Modality"]] += s["Instances"].size();
    return n;
  }

  fs::path config(double quiet, const json& destination, double retry = 5, const json& patch = json::object()) {
    json c = {{"ae_title", "SAGITTA"},
                    {"port", listen_port_},
                    {"spool", (dir_ / "spool").string()},
                    {"quiet_seconds", quiet},
                    {"concurrency", 2},
                    {"threads", 2},
                    {"retry", {{"initial_seconds", retry}, {"max_seconds", 2 * retry}}},
                    {"destination", destination},
                    {"rules",
                     {{{"name", "phantom-ct"},
                       {"modality", "CT"},
                       {"orientation", "axial"},
                       {"slice_thickness_mm", {1.0, 5.0}},
                       {"series_description", "phantom"},
                       {"model", kCard.string()},
                       {"outputs", {"seg", "sr", "rtstruct"}}},
                      {{"name", "sagittal-mr"}, {"modality", "MR"}, {"orientation", "sagittal"}, {"model", kOtherCard.string()}}}}};
    c.merge_patch(patch);
    const fs::path p = dir_ / "node.json";
    std::ofstream(p) << c.dump(2);
    return p;
  }

  json orthanc_destination() const {
    return {{"type", "dimse"}, {"ae_title", "ORTHANC"}, {"host", "127.0.0.1"}, {"port", server_->dicom_port()}};
  }

  static inline std::unique_ptr<st::OrthancServer> server_;
  static inline int listen_port_ = 0, studies_ = 0;
  static inline bool ready_ = false, dicomweb_ = false;
  fs::path dir_;
  std::string study_uid_;
};

// The same results back through STOW-RS to Orthanc's DICOMweb plugin, one object per request.
TEST_F(Listen, ResultsGoBackThroughStowRs) {
  if (!dicomweb_) GTEST_SKIP() << "Orthanc's DICOMweb plugin is not installed (Debian package orthanc-dicomweb)";
  const std::string study = study_in_orthanc();
  ASSERT_FALSE(study.empty());
  const json destination = {{"type", "dicomweb"},
                            {"url", fmt::format("http://127.0.0.1:{}/dicom-web", server_->http_port())}};
  Listener node(config(1, destination), dir_ / "listen.log");
  node.start();
  push(study);
  ASSERT_TRUE(node.wait_for(": done (3 results sent", 1, 120)) << node.log();
  const auto n = modalities(study);
  EXPECT_EQ(n.count("SEG") ? n.at("SEG") : 0, 1u);
  EXPECT_EQ(n.count("SR") ? n.at("SR") : 0, 1u);
  EXPECT_EQ(n.count("RTSTRUCT") ? n.at("RTSTRUCT") : 0, 1u);
  EXPECT_NE(node.log().find(fmt::format("127.0.0.1:{}/dicom-web", server_->http_port())), std::string::npos) << node.log();
  const int status = node.kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(Listen, OrthancPushesAStudyAndReceivesSegSrAndRtstructOnce) {
  const std::string study = study_in_orthanc();
  ASSERT_FALSE(study.empty());
  const double quiet = 3;
  Listener node(config(quiet, orthanc_destination()), dir_ / "listen.log");
  node.start();
  push(study);
  const auto pushed = Clock::now();
  ASSERT_TRUE(node.wait_for("received", 43, 30)) << node.log();
  // Complete only after the quiet period.
  ASSERT_TRUE(node.wait_for(" complete (43 instances in 2 series)", 1, 30)) << node.log();
  const double waited = std::chrono::duration<double>(Clock::now() - pushed).count();
  EXPECT_GE(waited, quiet - 0.3);
  ASSERT_TRUE(node.wait_for(": done (3 results sent", 1, 120)) << node.log();

  // The rules: the CT series is segmented, the MR one skipped with the reasons.
  EXPECT_EQ(node.count("matches rule phantom-ct"), 1u) << node.log();
  EXPECT_NE(node.log().find(study_uid_.substr(0, study_uid_.size() - 2) + ".3 (MR, CHEST, axial, 2.5 mm) skipped: rule "
                            "phantom-ct: modality MR is not CT; rule sagittal-mr: orientation axial is not sagittal"),
            std::string::npos)
      << node.log();

  // What Orthanc received: one SEG, one SR, one RTSTRUCT, beside the 40 + 3 images.
  const auto n = modalities(study);
  EXPECT_EQ(n.at("CT"), 40u);
  EXPECT_EQ(n.at("MR"), 3u);
  EXPECT_EQ(n.count("SEG") ? n.at("SEG") : 0, 1u);
  EXPECT_EQ(n.count("SR") ? n.at("SR") : 0, 1u);
  EXPECT_EQ(n.count("RTSTRUCT") ? n.at("RTSTRUCT") : 0, 1u);

  // The SEG as Orthanc stored it is a valid object.
  for (const auto& s : server_->rest_json("GET", "/studies/" + study + "/series")) {
    if (s["MainDicomTags"]["Modality"] != "SEG") continue;
    const fs::path seg = dir_ / "seg-from-orthanc.dcm";
    ASSERT_TRUE(server_->download("/instances/" + s["Instances"][0].get<std::string>() + "/file", seg));
    // Made by the model of the rule that matched (the card's name is the SEG's equipment model).
    const json tags = server_->rest_json("GET", "/instances/" + s["Instances"][0].get<std::string>() + "/tags?simplify");
    EXPECT_EQ(tags.value("ManufacturerModelName", ""), "sagitta-demo-phantom") << tags.dump();
    const auto check = st::dciodvfy(seg);
    if (!check.installed) GTEST_SKIP() << "dciodvfy not installed (Debian package dicom3tools)";
    EXPECT_EQ(check.errors, 0u) << check.report;
  }

  // No patient data in the log: name, ID and birth date of the demo series.
  for (const char* phi : {"Sagitta^Demo", "SAGITTA-DEMO", "19700101"}) EXPECT_EQ(node.count(phi), 0u) << phi;
  // Nor in the segmentations' own logs in the spool (the results themselves carry it, as they must).
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "spool"))
    if (e.path().extension() == ".log") {
      for (const char* phi : {"Sagitta^Demo", "SAGITTA-DEMO", "19700101"}) {
        EXPECT_EQ(st::read_file(e.path()).find(phi), std::string::npos) << e.path() << ": " << phi;
      }
    }
  // A clean stop on SIGTERM.
  const int status = node.kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(node.count("stopped"), 1u);
  // The job is in done/; nothing is left in the queue or incoming.
  EXPECT_TRUE(fs::is_empty(dir_ / "spool" / "queue"));
  EXPECT_TRUE(fs::is_empty(dir_ / "spool" / "incoming"));
  std::vector<fs::path> done;
  for (const auto& e : fs::directory_iterator(dir_ / "spool" / "done")) done.push_back(e.path());
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(fs::exists(done[0] / "job.json"));
  EXPECT_FALSE(fs::exists(done[0] / "series"));  // received instances go once the job is done (keep_inputs: false)
}

TEST_F(Listen, SigkillWhileSegmentingAndWhileSendingStillDeliversEachResultOnce) {
  const std::string study = study_in_orthanc();
  ASSERT_FALSE(study.empty());
  const fs::path cfg = config(1, orthanc_destination());
  const fs::path log = dir_ / "listen.log";
  {
    Listener node(cfg, log);
    node.start();
    push(study);
    ASSERT_TRUE(node.wait_for(": segmenting ", 1, 60)) << node.log();
    node.kill(SIGKILL);
  }
  EXPECT_EQ(modalities(study).count("SEG"), 0u);  // nothing was sent
  {
    Listener node(cfg, log);
    node.start();
    EXPECT_EQ(node.count(": resumed from the queue"), 1u) << node.log();
    ASSERT_TRUE(node.wait_for("confirmed by ORTHANC", 1, 120)) << node.log();
    node.kill(SIGKILL);  // as soon as the first result is confirmed
  }
  const std::size_t confirmed_before = Listener(cfg, log).count("confirmed by ORTHANC");
  {
    Listener node(cfg, log);
    node.start();
    ASSERT_TRUE(node.wait_for(": done (", 1, 120)) << node.log();
    // Every result was confirmed exactly once over the three runs.
    EXPECT_EQ(node.count("confirmed by ORTHANC"), 3u) << node.log();
    EXPECT_EQ(node.count(fmt::format("{} before)", confirmed_before)), 1u) << node.log();
  }
  {
    // A fourth start finds nothing to do: a confirmed job is never resent.
    Listener node(cfg, log);
    node.start();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    EXPECT_EQ(node.count("confirmed by ORTHANC"), 3u);
  }
  const auto n = modalities(study);
  EXPECT_EQ(n.count("SEG") ? n.at("SEG") : 0, 1u);
  EXPECT_EQ(n.count("SR") ? n.at("SR") : 0, 1u);
  EXPECT_EQ(n.count("RTSTRUCT") ? n.at("RTSTRUCT") : 0, 1u);
  // The segmentation interrupted by the first kill did not survive its parent.
  // ("spoo[l]": the pattern does not match the shell running pgrep.)
  EXPECT_EQ(st::run_command(fmt::format("pgrep -f {}", st::shell_quote((dir_ / "spoo[l]").string()))).out, "");
}

TEST_F(Listen, DestinationDownIsRetriedWithBackoffAndDeliveredOnceWhenUp) {
  const std::string study = study_in_orthanc();
  ASSERT_FALSE(study.empty());
  if (st::run_command("storescp --version").exit_code != 0) GTEST_SKIP() << "storescp not installed (Debian package dcmtk)";
  const int port = st::free_port();
  const json destination = {{"type", "dimse"}, {"ae_title", "STORESCP"}, {"host", "127.0.0.1"}, {"port", port},
                            {"connect_timeout_seconds", 2}};
  Listener node(config(1, destination, 1), dir_ / "listen.log", "--log-phi");
  node.start();
  push(study);
  // Refused twice: waits of 1 s, then 2 s (the backoff doubles up to max_seconds).
  ASSERT_TRUE(node.wait_for("will retry in 2 s", 1, 120)) << node.log();
  EXPECT_GE(node.count("sending to STORESCP@127.0.0.1"), 2u);
  EXPECT_EQ(node.count("will retry in 1 s"), 1u);

  // The destination comes up: DCMTK's storescp writes what it receives into a folder.
  const fs::path received = dir_ / "storescp";
  fs::create_directories(received);
  pid_t storescp = 0;
  const std::string port_text = std::to_string(port), out = received.string();
  std::vector<char*> argv{const_cast<char*>("storescp"), const_cast<char*>("-aet"), const_cast<char*>("STORESCP"),
                          const_cast<char*>("-od"), const_cast<char*>(out.c_str()), const_cast<char*>(port_text.c_str()), nullptr};
  ASSERT_EQ(::posix_spawnp(&storescp, "storescp", nullptr, nullptr, argv.data(), environ), 0);
  const bool done = node.wait_for(": done (3 results sent", 1, 60);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // nothing more arrives
  ::kill(storescp, SIGTERM);
  ::waitpid(storescp, nullptr, 0);
  ASSERT_TRUE(done) << node.log();
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(received)) files += e.is_regular_file();
  EXPECT_EQ(files, 3u);
  // --log-phi: the completed study names its patient (so the check of the other test is not vacuous).
  EXPECT_EQ(node.count("patient 'Sagitta^Demo' id 'SAGITTA-DEMO'"), 1u) << node.log();
}

TEST_F(Listen, CompressedInstancesAreKeptAsReceived) {
  SAGITTA_REQUIRE_EXTERNAL(source, "ct/totalsegmentator/example_ct_dicom");
  const std::string python = st::python_with("pydicom");
  if (python.empty()) GTEST_SKIP() << "no Python with pydicom (Debian package python3-pydicom)";
  // The real JPEG 2000 CT, with the UIDs a PACS files instances by (the anonymised files keep
  // the SOP UIDs only in their meta header and have empty study and series UIDs).
  const fs::path j2k = dir_ / "j2k";
  fs::create_directories(j2k);
  const std::string root = fmt::format("1.2.826.0.1.3680043.8.498.{}.77", ::getpid());
  for (const auto& e : fs::directory_iterator(source)) {
    const fs::path copy = j2k / e.path().filename();
    ASSERT_FALSE(st::copy_with_sop_uids(e.path(), copy).empty());
    st::set_attribute(copy, "0020,000d", root + ".1");
    st::set_attribute(copy, "0020,000e", root + ".2");
    st::set_attribute(copy, "0010,0020", "TS-EXAMPLE");
  }
  ASSERT_EQ(st::run_command(fmt::format("{} pacs store {} --port {} --aec ORTHANC", st::shell_quote(st::sagitta_executable()),
                                        st::shell_quote(j2k), server_->dicom_port())).exit_code, 0);
  const json found = server_->rest_json("POST", "/tools/lookup", root + ".1");
  ASSERT_EQ(found.size(), 1u) << found.dump();
  // No rule matches (nothing to segment); the instances are kept for the comparison.
  const json patch = {{"keep_inputs", true}, {"rules", {{{"name", "mr-only"}, {"modality", "MR"}, {"model", kCard.string()}}}}};
  Listener node(config(1, orthanc_destination(), 5, patch), dir_ / "listen.log");
  node.start();
  push(found[0]["ID"]);
  ASSERT_TRUE(node.wait_for(": done (0 results sent", 1, 60)) << node.log();
  EXPECT_EQ(node.count("skipped: rule mr-only: modality CT is not MR"), 1u) << node.log();
  fs::path received;
  for (const auto& e : fs::directory_iterator(dir_ / "spool" / "done")) received = e.path() / "series" / (root + ".2");
  // pydicom: same transfer syntax and the same compressed pixel data bytes, instance by instance.
  const std::string script = R"(
import pathlib, sys, pydicom
def load(folder):
    return {d.SOPInstanceUID: d for d in (pydicom.dcmread(str(p)) for p in pathlib.Path(folder).iterdir())}
sent, got = load(sys.argv[1]), load(sys.argv[2])
same = [k for k in sent if k in got and got[k].file_meta.TransferSyntaxUID == sent[k].file_meta.TransferSyntaxUID
        and got[k].PixelData == sent[k].PixelData]
print(len(sent), len(got), len(same), sorted({str(d.file_meta.TransferSyntaxUID) for d in got.values()}))
)";
  std::ofstream(dir_ / "compare.py") << script;
  const auto r = st::run_command(fmt::format("{} {} {} {}", python, st::shell_quote(dir_ / "compare.py"), st::shell_quote(j2k),
                                             st::shell_quote(received)));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "20 20 20 ['1.2.840.10008.1.2.4.90']\n");
}

}  // namespace
