// DICOMweb against real peers. Orthanc with its DICOMweb plugin (Debian packages `orthanc`,
// `orthanc-dicomweb`) on 127.0.0.1, basic authentication on: STOW-RS of the demo series and of
// a JPEG 2000 CT, QIDO-RS finding them, WADO-RS giving the same instances back with the same
// pixel data bytes and transfer syntax (judged by pydicom), credentials accepted and refused,
// `segment --dicomweb` storing a SEG and an SR that Orthanc then lists. And a misbehaving server
// (dicomweb_bad_server.py, Python's http.server, over http and over TLS with a throw-away CA):
// 404/500, garbage, a truncated multipart, a redirect loop, https -> http, a refused STOW, a
// silent server, nothing listening: one line, exit 3, nothing left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "sagitta/dicom/scan.h"
#include "support/dicom_fixups.h"
#include "support/orthanc.h"
#include "support/synthetic_dicom.h"
#include "support/test_paths.h"

extern char** environ;

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace st = sagitta::testing;

const char* kUser = "radiology";
const char* kPassword = "pw-Zq81-never-printed";

std::string sagitta(const std::string& args) { return fmt::format("'{}' {}", st::sagitta_executable().string(), args); }
std::string with_credentials(const std::string& command) {
  return fmt::format("SAGITTA_DICOMWEB_USER={} SAGITTA_DICOMWEB_PASSWORD={} {}", kUser, kPassword, command);
}
fs::path phantom() { return st::source_dir() / "testdata" / "demo" / "ct_phantom"; }
bool python_has(const char* module) {
  return st::run_command(fmt::format("/usr/bin/python3 -c 'import {}' 2>/dev/null", module)).exit_code == 0;
}

// Exit 3 with exactly one line on stderr that names `needle`.
void expect_one_line_failure(const st::ProcessResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
  EXPECT_EQ(r.err.find(kPassword), std::string::npos) << r.err;
}

// Nothing left behind: the folder is absent or empty.
void expect_nothing_in(const fs::path& folder) {
  if (!fs::exists(folder)) return;
  for (const auto& e : fs::recursive_directory_iterator(folder)) ADD_FAILURE() << "left behind: " << e.path();
}

nlohmann::json parse_json(const st::ProcessResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  try {
    return nlohmann::json::parse(r.out);
  } catch (...) {
    ADD_FAILURE() << "not JSON: " << r.out << r.err;
    return {};
  }
}

class DicomWeb : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    if (::access(st::kOrthancBinary, X_OK) != 0 || ::access(st::kOrthancDicomWebPlugin, R_OK) != 0) return;
    dir_ = st::binary_dir() / "test_scratch" / ("orthanc-web-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    http_port_ = st::free_port();
    int dicom_port = st::free_port();
    while (dicom_port == http_port_) dicom_port = st::free_port();
    const nlohmann::json config = {{"Name", "SagittaWebTest"},
                                   {"DicomAet", "ORTHANC"},
                                   {"DicomPort", dicom_port},
                                   {"HttpServerEnabled", true},
                                   {"HttpPort", http_port_},
                                   {"RemoteAccessAllowed", false},
                                   {"AuthenticationEnabled", true},
                                   {"RegisteredUsers", {{kUser, kPassword}}},
                                   {"Plugins", {st::kOrthancDicomWebPlugin}},
                                   {"DicomWeb", {{"Enable", true}, {"Root", "/dicom-web/"}}},
                                   {"ConcurrentJobs", 1},
                                   {"SaveJobs", false}};
    orthanc_ = std::make_unique<st::OrthancProcess>();
    orthanc_->start(dir_, config);
  }
  static void TearDownTestSuite() { orthanc_.reset(); }

  void SetUp() override {
    if (::access(st::kOrthancBinary, X_OK) != 0) GTEST_SKIP() << "Orthanc not installed (Debian package orthanc)";
    if (::access(st::kOrthancDicomWebPlugin, R_OK) != 0)
      GTEST_SKIP() << "Orthanc's DICOMweb plugin not installed (Debian package orthanc-dicomweb)";
    ASSERT_TRUE(orthanc_ && orthanc_->running()) << "Orthanc did not start; see " << (dir_ / "logs");
  }

  std::string url() const { return fmt::format("http://127.0.0.1:{}/dicom-web", http_port_); }
  nlohmann::json dicomweb(const std::string& args) {
    return parse_json(st::run_command(with_credentials(sagitta(fmt::format("dicomweb {} --url {} --json", args, url())))));
  }
  // pydicom's verdict on two folders (compare_dicom_folders.py).
  nlohmann::json compare(const fs::path& a, const fs::path& b) {
    const fs::path script = st::source_dir() / "tests" / "modules" / "compare_dicom_folders.py";
    return parse_json(st::run_command(fmt::format("/usr/bin/python3 {} {} {}", st::shell_quote(script), st::shell_quote(a),
                                                  st::shell_quote(b))));
  }

  static inline fs::path dir_;
  static inline int http_port_ = 0;
  static inline std::unique_ptr<st::OrthancProcess> orthanc_;
};

TEST_F(DicomWeb, StoreQueryRetrieveThePhantomSeries) {
  if (!python_has("pydicom")) GTEST_SKIP() << "pydicom missing (Debian package python3-pydicom)";
  const auto scan = dcm::scan({phantom()});
  const auto& info = scan.stacks.front().info;
  const std::size_t n = scan.stacks.front().frames.size();

  const auto stored = dicomweb(fmt::format("store {}", st::shell_quote(phantom())));
  EXPECT_EQ(stored["sent"], n);
  EXPECT_EQ(stored["sop_instance_uids"].size(), n);

  const auto series = dicomweb(fmt::format("query --level series --study {}", info.study_instance_uid));
  ASSERT_EQ(series["matches"].size(), 1u) << series.dump();
  EXPECT_EQ(series["matches"][0]["SeriesInstanceUID"], info.series_instance_uid);
  EXPECT_EQ(series["matches"][0]["StudyInstanceUID"], info.study_instance_uid);
  EXPECT_EQ(series["matches"][0]["NumberOfSeriesRelatedInstances"], std::to_string(n));
  EXPECT_EQ(series["matches"][0]["Modality"], "CT");
  const auto studies = dicomweb(fmt::format("query --patient-id '{}'", info.patient_id));
  ASSERT_EQ(studies["matches"].size(), 1u);
  EXPECT_EQ(studies["matches"][0]["StudyInstanceUID"], info.study_instance_uid);
  const auto instances = dicomweb(fmt::format("query --level image --study {} --series {}", info.study_instance_uid,
                                              info.series_instance_uid));
  std::set<std::string> found, sent(stored["sop_instance_uids"].begin(), stored["sop_instance_uids"].end());
  for (const auto& m : instances["matches"]) found.insert(m["SOPInstanceUID"].get<std::string>());
  EXPECT_EQ(found, sent);
  // Paging with QIDO-RS's own limit and offset.
  const std::string instance_query = fmt::format("query --level image --study {}", info.study_instance_uid);
  EXPECT_EQ(dicomweb(instance_query + " --keys 'limit=5'")["matches"].size(), 5u);
  EXPECT_EQ(dicomweb(instance_query + fmt::format(" --keys 'limit=10;offset={}'", n - 2))["matches"].size(), 2u);

  // The study back, as sent: the same instances, the same bytes of pixel data.
  const fs::path out = st::scratch_dir() / "study";
  const auto got = dicomweb(fmt::format("retrieve --study {} -o {}", info.study_instance_uid, st::shell_quote(out)));
  EXPECT_EQ(got["files"].size(), n);
  const auto verdict = compare(phantom(), out);
  EXPECT_TRUE(verdict["same_instances"].get<bool>()) << verdict.dump();
  EXPECT_EQ(verdict["identical_pixel_data"], n) << verdict.dump();
  EXPECT_EQ(verdict["same_transfer_syntax"], n) << verdict.dump();
  for (const auto& e : fs::directory_iterator(out)) EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
}

TEST_F(DicomWeb, Jpeg2000SeriesComesBackCompressedAndByteIdentical) {
  SAGITTA_REQUIRE_EXTERNAL(source, "ct/totalsegmentator/example_ct_dicom");
  if (!python_has("pydicom")) GTEST_SKIP() << "pydicom missing (Debian package python3-pydicom)";
  // The anonymised files keep their SOP UIDs only in the meta header and have empty study and
  // series UIDs, which a server needs to file them: give them some (pixel data untouched).
  const fs::path j2k = st::scratch_dir() / "j2k";
  fs::create_directories(j2k);
  for (const auto& e : fs::directory_iterator(source)) {
    const fs::path copy = j2k / e.path().filename();
    ASSERT_FALSE(st::copy_with_sop_uids(e.path(), copy).empty());
    st::set_attribute(copy, "0020,000d", "1.2.826.0.1.3680043.8.498.4712.1");
    st::set_attribute(copy, "0020,000e", "1.2.826.0.1.3680043.8.498.4712.2");
    st::set_attribute(copy, "0010,0020", "TS-WEB");
  }
  const auto stored = dicomweb(fmt::format("store {}", st::shell_quote(j2k)));
  EXPECT_EQ(stored["sent"], 20);
  const fs::path out = j2k.parent_path() / "back";
  const auto got = dicomweb(fmt::format("retrieve --study 1.2.826.0.1.3680043.8.498.4712.1 --series "
                                        "1.2.826.0.1.3680043.8.498.4712.2 -o {}",
                                        st::shell_quote(out)));
  EXPECT_EQ(got["files"].size(), 20u);
  EXPECT_EQ(got["transfer_syntaxes"], nlohmann::json::array({"1.2.840.10008.1.2.4.90"}));
  const auto verdict = compare(j2k, out);
  EXPECT_TRUE(verdict["same_instances"].get<bool>()) << verdict.dump();
  EXPECT_EQ(verdict["identical_pixel_data"], 20) << verdict.dump();
  EXPECT_EQ(verdict["transfer_syntaxes_b"], nlohmann::json::array({"1.2.840.10008.1.2.4.90"})) << verdict.dump();
}

TEST_F(DicomWeb, BasicAuthenticationIsAcceptedOrRefused) {
  const std::string query = sagitta(fmt::format("dicomweb query --url {} --json", url()));
  expect_one_line_failure(st::run_command(query), "HTTP 401");
  expect_one_line_failure(st::run_command(fmt::format("SAGITTA_DICOMWEB_USER={} SAGITTA_DICOMWEB_PASSWORD=wrong {}", kUser,
                                                      query)),
                          "HTTP 401");
  expect_one_line_failure(st::run_command(query + " --token not-a-token"), "HTTP 401");
  // A user and password in the URL are used but never shown.
  auto r = st::run_command(sagitta(fmt::format("dicomweb query --url http://{}:{}@127.0.0.1:{}/dicom-web/nowhere", kUser,
                                               kPassword, http_port_)));
  expect_one_line_failure(r, "HTTP 404");
  // Accepted: from the command line and from the environment.
  r = st::run_command(query + fmt::format(" --user {} --password {}", kUser, kPassword));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = st::run_command(with_credentials(query));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["matches"].size(), 0u);
}

TEST_F(DicomWeb, SegmentAStudyFromTheServerAndStoreTheSegAndSrBack) {
  const auto scan = dcm::scan({phantom()});
  const auto& info = scan.stacks.front().info;
  dicomweb(fmt::format("store {}", st::shell_quote(phantom())));
  const fs::path out = st::scratch_dir() / "segment";
  const fs::path card = st::source_dir() / "testdata" / "models" / "phantom" / "model.json";
  const auto r = st::run_command(with_credentials(sagitta(
      fmt::format("segment --dicomweb {} --study {} --model {} --dicom-sr -o {} --threads 2 --json --no-progress", url(),
                  info.study_instance_uid, st::shell_quote(card), st::shell_quote(out)))));
  const auto report = parse_json(r);
  ASSERT_TRUE(report["dicom"]["seg"].is_object()) << report.dump();
  EXPECT_EQ(report["dicom"]["seg"]["stored"], 1);
  EXPECT_EQ(report["dicom"]["sr"]["stored"], 1);
  EXPECT_EQ(report["inputs"][0]["dicomweb"]["study"], info.study_instance_uid);
  for (const auto& e : fs::directory_iterator(out)) EXPECT_NE(e.path().filename().string()[0], '.') << e.path();

  const auto seg = dicomweb(fmt::format("query --level series --study {} --modality SEG", info.study_instance_uid));
  ASSERT_EQ(seg["matches"].size(), 1u) << seg.dump();
  EXPECT_EQ(seg["matches"][0]["SeriesInstanceUID"], report["dicom"]["seg"]["series_instance_uid"]);
  const auto sr = dicomweb(fmt::format("query --level series --study {} --modality SR", info.study_instance_uid));
  ASSERT_EQ(sr["matches"].size(), 1u) << sr.dump();
  EXPECT_EQ(sr["matches"][0]["SeriesInstanceUID"], report["dicom"]["sr"]["series_instance_uid"]);
}

// ---- a misbehaving server ------------------------------------------------------------------------

class BadServer : public ::testing::Test {
protected:
  static pid_t spawn(const std::vector<std::string>& args, const fs::path& port_file, int& port) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return 0;
    for (int i = 0; i < 100 && !fs::exists(port_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    port = fs::exists(port_file) ? std::stoi(st::read_file(port_file)) : 0;
    return pid;
  }
  static void SetUpTestSuite() {
    if (::access("/usr/bin/python3", X_OK) != 0) return;
    dir_ = st::binary_dir() / "test_scratch" / ("bad-dicomweb-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string script = (st::source_dir() / "tests" / "modules" / "dicomweb_bad_server.py").string();
    const std::string dicom = (phantom() / "ct_phantom_0000.dcm").string();
    plain_pid_ = spawn({"/usr/bin/python3", script, "--port-file", (dir_ / "plain.port").string(), "--dicom", dicom},
                       dir_ / "plain.port", plain_);
    // A throw-away certificate for 127.0.0.1, its own CA.
    const auto cert = st::run_command(fmt::format(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout {0}/key.pem -out {0}/cert.pem -subj /CN=127.0.0.1 "
        "-addext subjectAltName=IP:127.0.0.1 -days 1 2>&1",
        st::shell_quote(dir_)));
    if (cert.exit_code == 0)
      tls_pid_ = spawn({"/usr/bin/python3", script, "--port-file", (dir_ / "tls.port").string(), "--cert",
                        (dir_ / "cert.pem").string(), "--key", (dir_ / "key.pem").string(), "--plain-port",
                        std::to_string(plain_)},
                       dir_ / "tls.port", tls_);
  }
  static void TearDownTestSuite() {
    for (pid_t* pid : {&plain_pid_, &tls_pid_})
      if (*pid > 0) {
        ::kill(*pid, SIGTERM);
        ::waitpid(*pid, nullptr, 0);
        *pid = 0;
      }
  }
  void SetUp() override {
    if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "/usr/bin/python3 missing";
    ASSERT_GT(plain_, 0) << "dicomweb_bad_server.py did not start";
  }
  std::string plain(const std::string& route) const { return fmt::format("http://127.0.0.1:{}/{}", plain_, route); }
  std::string tls(const std::string& route) const { return fmt::format("https://127.0.0.1:{}/{}", tls_, route); }

  static inline fs::path dir_;
  static inline pid_t plain_pid_ = 0, tls_pid_ = 0;
  static inline int plain_ = 0, tls_ = 0;
};

TEST_F(BadServer, HttpErrorsGarbageAndRedirectLoopsAreOneLine) {
  auto query = [&](const std::string& route, const std::string& more = "") {
    return st::run_command(sagitta(fmt::format("dicomweb query --url {} {}", plain(route), more)));
  };
  expect_one_line_failure(query("e404"), "HTTP 404 Not Found");
  expect_one_line_failure(query("e404"), plain("e404/studies"));
  expect_one_line_failure(query("e500"), "HTTP 500");
  expect_one_line_failure(query("junk"), "not JSON");
  expect_one_line_failure(query("oddjson"), "not DICOM JSON: an attribute's Value is not an array");
  expect_one_line_failure(query("html"), "'text/html', not DICOM JSON");
  expect_one_line_failure(query("loop"), "more than 5 redirects");
  expect_one_line_failure(query("loop", "--max-redirects 2"), "more than 2 redirects");
  const auto t0 = std::chrono::steady_clock::now();
  expect_one_line_failure(query("slow", "--request-timeout 2"), "no answer in time");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
  const int nobody = st::free_port();
  expect_one_line_failure(st::run_command(sagitta(fmt::format("dicomweb query --url http://127.0.0.1:{}/dicom-web", nobody))),
                          "cannot connect");
  expect_one_line_failure(st::run_command(sagitta("dicomweb query --url ftp://127.0.0.1/dicom-web")), "http:// or https://");
}

TEST_F(BadServer, SigintCancelsAWaitingRequestWithExitCode4AndNothingLeft) {
  const fs::path out = st::scratch_dir() / "cancelled";
  for (const std::string& action : {std::string("query"), "retrieve --study 1.2.3 -o " + st::shell_quote(out)}) {
    const auto t0 = std::chrono::steady_clock::now();
    // The server says nothing for 60 s; SIGINT once it has the request (a fixed delay raced the
    // program's start on a loaded machine: a background job starts with SIGINT ignored until
    // Sagitta installs its handler).
    const fs::path log = dir_ / "plain.port.slow";
    const std::size_t before = st::read_file(log).size();
    const auto r = st::run_command(fmt::format(
        "({} & p=$!; i=0; while [ \"$(wc -c < {} 2>/dev/null || echo 0)\" -le {} ] && [ $i -lt 300 ]; do sleep 0.1; "
        "i=$((i+1)); done; kill -INT $p; wait $p)",
        sagitta(fmt::format("dicomweb {} --url {} --no-progress", action, plain("slow"))), st::shell_quote(log), before));
    EXPECT_EQ(r.exit_code, 4) << action << ": " << r.err;
    EXPECT_NE(r.err.find("cancelled"), std::string::npos) << r.err;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
  }
  expect_nothing_in(out);
}

TEST_F(BadServer, CredentialsNeverFollowARedirectToAnotherHost) {
  const std::string credentials = fmt::format("--user {} --password {}", kUser, kPassword);
  // The server notices credentials (HTTP 400) ...
  expect_one_line_failure(st::run_command(sagitta(fmt::format("dicomweb query --url {} {}", plain("whoami"), credentials))),
                          "HTTP 400");
  // ... and gets none after a redirect from 127.0.0.1 to localhost; bearer tokens neither.
  for (const std::string& c : {credentials, std::string("--token secret-token")}) {
    const auto r = st::run_command(sagitta(fmt::format("dicomweb query --url {} {} --json", plain("elsewhere"), c)));
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
}

TEST_F(BadServer, BrokenRetrievalsAndRefusedStoresLeaveNothing) {
  const fs::path out = st::scratch_dir();
  auto retrieve = [&](const std::string& route, const fs::path& folder) {
    return st::run_command(
        sagitta(fmt::format("dicomweb retrieve --url {} --study 1.2.3 -o {}", plain(route), st::shell_quote(folder))));
  };
  expect_one_line_failure(retrieve("truncated", out / "a"), "truncated");
  expect_nothing_in(out / "a");
  expect_one_line_failure(retrieve("notdicom", out / "b"), "part 1 is not a DICOM file");
  expect_nothing_in(out / "b");
  expect_one_line_failure(retrieve("badlength", out / "e"), "its Content-Length says");
  expect_nothing_in(out / "e");
  expect_one_line_failure(retrieve("html", out / "c"), "not multipart/related");
  expect_nothing_in(out / "c");
  expect_one_line_failure(retrieve("e500", out / "d"), "HTTP 500");
  expect_nothing_in(out / "d");

  auto r = st::run_command(sagitta(fmt::format("dicomweb store {} --url {}", st::shell_quote(phantom()), plain("stowfail"))));
  expect_one_line_failure(r, "refused 40 of 40 instances");
  EXPECT_NE(r.err.find("0xA700 out of resources"), std::string::npos) << r.err;

  // segment --dicomweb with a broken server: no outputs, no staging folders.
  const fs::path card = st::source_dir() / "testdata" / "models" / "phantom" / "model.json";
  r = st::run_command(sagitta(fmt::format("segment --dicomweb {} --study 1.2.3 --model {} -o {} --no-progress",
                                          plain("truncated"), st::shell_quote(card), st::shell_quote(out / "seg"))));
  expect_one_line_failure(r, "truncated");
  expect_nothing_in(out / "seg");
}

TEST_F(BadServer, TlsIsVerifiedAndNeverDowngraded) {
  if (tls_ == 0) GTEST_SKIP() << "no TLS server (openssl or Python's ssl module missing)";
  const std::string ca = st::shell_quote(dir_ / "cert.pem");
  auto query = [&](const std::string& url, const std::string& more = "") {
    return st::run_command(sagitta(fmt::format("dicomweb query --url {} --json {}", url, more)));
  };
  expect_one_line_failure(query(tls("empty")), "TLS verification failed");
  auto r = query(tls("empty"), "--ca-file " + ca);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The certificate names 127.0.0.1, not localhost.
  expect_one_line_failure(query(fmt::format("https://localhost:{}/empty", tls_), "--ca-file " + ca),
                          "TLS verification failed");
  expect_one_line_failure(query(tls("tohttp"), "--ca-file " + ca), "redirected from https to plain http");
}

}  // namespace
