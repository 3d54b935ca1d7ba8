// DICOM that never crashes and never silently fails, one class of real-world trouble per group of
// tests: character sets, hostile structure, VR UN, mixed image types, derived objects from
// anonymised sources, vendor-private geometry. Files are written here with DCMTK (or as raw
// bytes where DCMTK would refuse to write them); the real CT in the shared data and the pydicom
// test files Debian ships are used where present.
#include <gtest/gtest.h>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <fmt/format.h>
#include <itkImageRegionIterator.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/report_json.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/seg.h"
#include "sagitta/dicom/text.h"
#include "nesting.h"
#include "support/synthetic_dicom.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace st = sagitta::testing;

st::SeriesSpec small_series(int series_number = 1) {
  st::SeriesSpec spec;
  spec.rows = spec.columns = 12;
  spec.slices = 4;
  spec.series_number = series_number;
  spec.markers = {{{-10, -10, -14}, 1.5, 500}};
  return spec;
}

void edit(const fs::path& file, const std::function<void(DcmDataset&)>& change) {
  DcmFileFormat f;
  ASSERT_TRUE(f.loadFile(file.c_str()).good()) << file;
  const E_TransferSyntax xfer = f.getDataset()->getOriginalXfer();
  change(*f.getDataset());
  ASSERT_TRUE(f.saveFile(file.c_str(), xfer).good()) << file;
}

std::string dciodvfy_errors(const fs::path& file) {
  const auto r = st::run_command(fmt::format("dciodvfy '{}' 2>&1", file.string()));
  std::string errors;
  std::size_t pos = 0;
  while (pos < r.out.size()) {
    const auto end = r.out.find('\n', pos);
    const std::string line = r.out.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (line.rfind("Error", 0) == 0) errors += line + "\n";
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return errors;
}

// The command line is absent in the DICOM-only sanitizer build.
bool have_cli() {
  std::error_code ec;
  if (fs::is_regular_file(st::sagitta_executable(), ec)) return true;
  std::cout << "[ NOTE ] sagitta executable not built (DICOM-only build); command-line checks skipped\n";
  return false;
}

bool have(const char* tool) { return st::run_command(fmt::format("command -v {} >/dev/null", tool)).exit_code == 0; }

// An all-background label map on `grid`.
dcm::LabelMap::Pointer empty_labels(const itk::ImageBase<3>& grid) {
  auto labels = dcm::LabelMap::New();
  labels->CopyInformation(&grid);
  labels->SetRegions(grid.GetLargestPossibleRegion());
  labels->Allocate(true);
  return labels;
}

// ---- 1. character sets -------------------------------------------------------------------------

TEST(CharacterSets, Latin1DescriptionsReachJsonAsUtf8) {
  const fs::path dir = st::scratch_dir();
  const auto files = st::write_series(small_series(), dir / "s");
  for (const auto& f : files)
    edit(f, [](DcmDataset& d) {
      d.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
      d.putAndInsertString(DCM_SeriesDescription, "IRM c\xE9r\xE9" "brale");
      d.putAndInsertString(DCM_PatientName, "Buc^J\xE9r\xF4me");
      d.putAndInsertString(DCM_InstitutionName, "H\xF4pital");
    });
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 1u);
  EXPECT_EQ(scan.stacks[0].info.series_description, "IRM cérébrale");
  EXPECT_EQ(scan.stacks[0].info.patient_name, "Buc^Jérôme");
  // nlohmann-json's default dump throws on invalid UTF-8: it must not.
  std::string text;
  ASSERT_NO_THROW(text = dcm::to_json(scan).dump());
  EXPECT_NE(text.find("IRM cérébrale"), std::string::npos);

  if (!have_cli()) return;
  const auto r = st::run_command(fmt::format("'{}' info --json '{}'", st::sagitta_executable().string(), dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("IRM cérébrale"), std::string::npos);
  const auto table = st::run_command(fmt::format("'{}' info '{}'", st::sagitta_executable().string(), dir.string()));
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("Buc^Jérôme"), std::string::npos);
}

TEST(CharacterSets, UnknownSetAndStrayBytesAreReplacedNotFatal) {
  const fs::path dir = st::scratch_dir();
  const auto files = st::write_series(small_series(), dir / "s");
  for (const auto& f : files)
    edit(f, [](DcmDataset& d) {
      d.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 999");
      d.putAndInsertString(DCM_SeriesDescription, "T1 \xFF\xFE");
      d.putAndInsertString(DCM_Manufacturer, "\x80\x81");
    });
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 1u);
  EXPECT_EQ(scan.stacks[0].info.series_description, "T1 \xEF\xBF\xBD\xEF\xBF\xBD");
  bool noted = false;
  for (const auto& d : scan.decisions) noted |= d.what.find("ISO_IR 999") != std::string::npos;
  EXPECT_TRUE(noted);
  ASSERT_NO_THROW((void)dcm::to_json(scan).dump());
}

TEST(CharacterSets, JapaneseAndChineseNamesFromWrittenFiles) {
  const fs::path dir = st::scratch_dir();
  auto jp = small_series(1);
  auto cn = small_series(2);
  const auto jp_files = st::write_series(jp, dir / "jp");
  const auto cn_files = st::write_series(cn, dir / "cn");
  for (const auto& f : jp_files)
    edit(f, [](DcmDataset& d) {
      d.putAndInsertString(DCM_SpecificCharacterSet, "\\ISO 2022 IR 87");
      d.putAndInsertString(DCM_PatientName, "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B");
    });
  for (const auto& f : cn_files)
    edit(f, [](DcmDataset& d) {
      d.putAndInsertString(DCM_SpecificCharacterSet, "GB18030");
      d.putAndInsertString(DCM_PatientName, "Wang^XiaoDong=\xCD\xF5^\xD0\xA1\xB6\xAB");
    });
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 2u);
  std::set<std::string> names;
  for (const auto& s : scan.stacks) names.insert(s.info.patient_name);
  EXPECT_TRUE(names.count("Yamada^Tarou=山田^太郎"));
  EXPECT_TRUE(names.count("Wang^XiaoDong=王^小东"));
}

// PS3.5 6.1.2.5.4: a sequence item may declare its own character set, which applies inside it
// (nested items included); its siblings keep the dataset's. Checked on a SEG whose second segment
// item declares ISO_IR 144 (Cyrillic) in an ISO_IR 100 dataset, against pydicom's reading.
TEST(CharacterSets, AnItemsOwnCharacterSetAppliesInsideIt) {
  const fs::path dir = st::scratch_dir();
  const auto files = st::write_series(small_series(), dir / "ct");
  const auto series = dcm::load(dcm::select_stack(dcm::scan({dir / "ct"}), ""));
  const auto& grid = *series.volumes.front();
  auto labels = empty_labels(grid);
  labels->SetPixel({{3, 3, 1}}, 1);
  labels->SetPixel({{4, 4, 1}}, 2);
  const fs::path seg = dir / "seg.dcm";
  dcm::write_seg(*labels, grid, series.info, {{1, "one", {200, 100, 50}, {}, {}}, {2, "two", {50, 100, 200}, {}, {}}},
                 seg, {});
  edit(seg, [](DcmDataset& d) {
    d.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
    DcmItem* first = nullptr;
    DcmItem* second = nullptr;
    ASSERT_TRUE(d.findAndGetSequenceItem(DCM_SegmentSequence, first, 0).good());
    ASSERT_TRUE(d.findAndGetSequenceItem(DCM_SegmentSequence, second, 1).good());
    first->putAndInsertString(DCM_SegmentLabel, "F\xF6tus");                         // Latin-1: Fötus
    second->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 144");
    second->putAndInsertString(DCM_SegmentLabel, "\xBF\xD5\xE7\xD5\xDD\xEC");  // ISO 8859-5: Печень
  });
  const auto back = dcm::read_seg(seg);
  ASSERT_EQ(back.segments.size(), 2u);
  EXPECT_EQ(back.segments[0].name, "Fötus");
  EXPECT_EQ(back.segments[1].name, "Печень");
  const auto peer = st::run_command(fmt::format(
      "/usr/bin/python3 -c \"import pydicom,sys; d=pydicom.dcmread(sys.argv[1]); "
      "print('|'.join(s.SegmentLabel for s in d.SegmentSequence))\" '{}'",
      seg.string()));
  if (peer.exit_code == 0) EXPECT_EQ(peer.out, "Fötus|Печень\n");
  else std::cout << "[ NOTE ] pydicom check skipped: " << peer.err << "\n";
}

// pydicom's own character set test files (Debian's python3-pydicom): our conversion of every
// patient name must be what pydicom decodes.
TEST(CharacterSets, PydicomCharsetFilesMatchPydicom) {
  const fs::path charsets = "/usr/lib/python3/dist-packages/pydicom/data/charset_files";
  if (!fs::exists(charsets)) GTEST_SKIP() << charsets << " not found (Debian package python3-pydicom)";
  // One interpreter for all files: "<file>\t<name>" lines, UTF-8.
  const auto r = st::run_command(fmt::format(
      "/usr/bin/python3 -c \"import pydicom,sys,pathlib\n"
      "for p in sorted(pathlib.Path(sys.argv[1]).glob('*.dcm')):\n"
      "  d=pydicom.dcmread(str(p))\n"
      "  n=d.get('PatientName')\n"
      "  if n is not None: sys.stdout.buffer.write((p.name+chr(9)+str(n)+chr(10)).encode('utf-8'))\" '{}'",
      charsets.string()));
  if (r.exit_code != 0) GTEST_SKIP() << "pydicom could not read its own files: " << r.err;
  // pydicom's text form drops empty trailing components ("=" and "^").
  auto trimmed = [](std::string s) {
    while (!s.empty() && (s.back() == '=' || s.back() == '^')) s.pop_back();
    return s;
  };
  std::size_t checked = 0;
  std::stringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const auto tab = line.find('\t');
    const fs::path file = charsets / line.substr(0, tab);
    DcmFileFormat f;
    ASSERT_TRUE(f.loadFile(file.c_str()).good()) << file;
    OFString raw, cs;
    f.getDataset()->findAndGetOFStringArray(DCM_PatientName, raw);
    f.getDataset()->findAndGetOFStringArray(DCM_SpecificCharacterSet, cs);
    EXPECT_EQ(trimmed(dcm::to_utf8(std::string(raw.c_str(), raw.length()), cs.c_str())), trimmed(line.substr(tab + 1)))
        << file.filename() << " (" << cs << ")";
    ++checked;
  }
  EXPECT_GE(checked, 14u);
}

// ---- 2. hostile structure ---------------------------------------------------------------------

// Little-endian bytes of a tag, VR and length.
void put_u16(std::string& b, unsigned v) { b += char(v & 0xFF), b += char((v >> 8) & 0xFF); }
void put_u32(std::string& b, unsigned long v) { put_u16(b, v & 0xFFFF), put_u16(b, (v >> 16) & 0xFFFF); }
void tag(std::string& b, unsigned g, unsigned e) { put_u16(b, g), put_u16(b, e); }
void explicit_short(std::string& b, unsigned g, unsigned e, const char* vr, const std::string& v) {
  tag(b, g, e), b += vr, put_u16(b, static_cast<unsigned>(v.size())), b += v;
}
void explicit_long(std::string& b, unsigned g, unsigned e, const char* vr, unsigned long length) {
  tag(b, g, e), b += vr, b += std::string(2, '\0'), put_u32(b, length);
}

std::string meta_header(const std::string& syntax) {
  std::string m;
  explicit_long(m, 2, 1, "OB", 2), m += std::string("\0\1", 2);
  explicit_short(m, 2, 2, "UI", std::string("1.2.840.10008.5.1.4.1.1.7\0", 26));
  explicit_short(m, 2, 3, "UI", "1.2.3.4.5.6.7.8.9.10");
  std::string ts = syntax;
  if (ts.size() % 2) ts += '\0';
  explicit_short(m, 2, 0x10, "UI", ts);
  std::string group;
  explicit_short(group, 2, 0, "UL", std::string(4, '\0'));
  const auto n = m.size();
  group[8] = char(n & 0xFF), group[9] = char((n >> 8) & 0xFF);
  return std::string(128, '\0') + "DICM" + group + m;
}

// A dataset of `depth` nested undefined-length sequences: explicit VR (SQ), implicit VR, or
// explicit VR with each level stored as UN (whose contents are implicit VR).
enum class Nesting { Explicit, Implicit, Unknown };
std::string nested(int depth, Nesting how) {
  std::string b;
  if (how == Nesting::Implicit) tag(b, 8, 0x16), put_u32(b, 26), b += std::string("1.2.840.10008.5.1.4.1.1.7\0", 26);
  else explicit_short(b, 8, 0x16, "UI", std::string("1.2.840.10008.5.1.4.1.1.7\0", 26));
  for (int i = 0; i < depth; ++i) {
    const bool implicit_here = how == Nesting::Implicit || (how == Nesting::Unknown && i > 0);
    if (implicit_here) tag(b, 8, 0x1115), put_u32(b, 0xFFFFFFFF);
    else explicit_long(b, 8, 0x1115, how == Nesting::Unknown ? "UN" : "SQ", 0xFFFFFFFF);
    tag(b, 0xFFFE, 0xE000), put_u32(b, 0xFFFFFFFF);
  }
  for (int i = 0; i < depth; ++i) tag(b, 0xFFFE, 0xE00D), put_u32(b, 0), tag(b, 0xFFFE, 0xE0DD), put_u32(b, 0);
  return b;
}

std::string deflate_raw(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 16, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

TEST(HostileStructure, DeepNestingIsSkippedAndTheScanGoesOn) {
  const fs::path dir = st::scratch_dir();
  st::write_series(small_series(), dir / "good");
  // 100,000 levels: DCMTK alone overflows an 8 MiB stack from about 5,000.
  write_bytes(dir / "bad" / "explicit.dcm", meta_header("1.2.840.10008.1.2.1") + nested(100000, Nesting::Explicit));
  write_bytes(dir / "bad" / "implicit.dcm", meta_header("1.2.840.10008.1.2") + nested(100000, Nesting::Implicit));
  write_bytes(dir / "bad" / "unknown.dcm", meta_header("1.2.840.10008.1.2.1") + nested(100000, Nesting::Unknown));
  write_bytes(dir / "bad" / "bare", nested(100000, Nesting::Implicit));
  write_bytes(dir / "bad" / "deflated.dcm",
              meta_header("1.2.840.10008.1.2.1.99") + deflate_raw(nested(100000, Nesting::Explicit)));
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 1u);
  EXPECT_EQ(scan.files_seen, 9u);
  EXPECT_EQ(scan.files_used, 4u);
  int refused = 0;
  for (const auto& d : scan.decisions) refused += d.what.find("nest more than") != std::string::npos;
  EXPECT_EQ(refused, 5);

  // The command line: one folder with the hostile files still lists the good series.
  if (!have_cli()) return;
  const auto r = st::run_command(fmt::format("'{}' info --json '{}'", st::sagitta_executable().string(), dir.string()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Only hostile files: one clear line, exit 3.
  const auto bad = st::run_command(fmt::format("'{}' info '{}'", st::sagitta_executable().string(), (dir / "bad").string()));
  EXPECT_EQ(bad.exit_code, 3) << bad.err;
  EXPECT_NE(bad.err.find("nest more than"), std::string::npos) << bad.err;
}

TEST(HostileStructure, ModerateNestingStillLoads) {
  const fs::path dir = st::scratch_dir();
  const auto files = st::write_series(small_series(), dir);
  // 60 levels of a private sequence in every file: unusual but harmless.
  for (const auto& f : files)
    edit(f, [](DcmDataset& d) {
      DcmItem* item = &d;
      for (int i = 0; i < 60; ++i) {
        DcmItem* next = nullptr;
        ASSERT_TRUE(item->findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, next, 0).good());
        item = next;
      }
    });
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 1u);
  EXPECT_EQ(scan.files_used, files.size());
  EXPECT_NO_THROW(dcm::load(scan.stacks[0]));
}

// A value claiming more bytes than the file holds (here 3 GB inside a sequence): DCMTK would
// allocate the claimed length first; the guard refuses the file with a decision instead.
TEST(HostileStructure, ValuesLongerThanTheFileAreRefused) {
  const fs::path dir = st::scratch_dir();
  st::write_series(small_series(), dir / "good");
  std::string b = meta_header("1.2.840.10008.1.2.1");
  explicit_short(b, 8, 0x16, "UI", std::string("1.2.840.10008.5.1.4.1.1.7\0", 26));
  explicit_long(b, 8, 0x1115, "SQ", 0xFFFFFFFF);
  tag(b, 0xFFFE, 0xE000), put_u32(b, 0xFFFFFFFF);
  explicit_long(b, 0x0009, 0x1010, "OB", 3000000000UL);
  b += std::string(64, 'x');
  write_bytes(dir / "bad" / "claims.dcm", b);
  write_bytes(dir / "bad" / "claims-deflated.dcm",
              meta_header("1.2.840.10008.1.2.1.99") + deflate_raw(b.substr(meta_header("1.2.840.10008.1.2.1").size())));
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 1u);
  int refused = 0;
  for (const auto& d : scan.decisions) refused += d.what.find("remain in the file") != std::string::npos;
  EXPECT_EQ(refused, 2);
}

// The guard refuses nothing DCMTK reads completely: every pydicom test file and the shared data.
TEST(HostileStructure, NoRealFileIsRefused) {
  std::vector<fs::path> roots = {"/usr/lib/python3/dist-packages/pydicom/data/test_files",
                                 "/usr/lib/python3/dist-packages/pydicom/data/charset_files"};
  if (const auto external = st::external_data()) roots.push_back(*external);
  std::size_t checked = 0;
  for (const auto& root : roots) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) continue;
    for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      const auto ext = it->path().extension();
      if (ext == ".nii" || ext == ".gz" || ext == ".nrrd" || ext == ".svs" || ext == ".tif" || ext == ".json") continue;
      DcmFileFormat f;
      if (f.loadFile(it->path().c_str()).bad()) continue;  // not DICOM, or DCMTK refuses it anyway
      EXPECT_EQ(dcm::detail::nesting_problem(it->path()), "") << it->path();
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "neither python3-pydicom's test files nor the shared data are present";
  std::cout << "[ NOTE ] " << checked << " real files checked\n";
  // And the deepest real structure is measured, not guessed: pydicom's nested private sequences.
  const fs::path nested = "/usr/lib/python3/dist-packages/pydicom/data/test_files/nested_priv_SQ.dcm";
  if (fs::exists(nested)) {
    EXPECT_GE(dcm::detail::sequence_depth(nested), 2);
  }
}

// ---- 3. VR UN ----------------------------------------------------------------------------------

// Re-stores the geometry of every file as VR UN (as an explicit-VR writer that did not know the
// tags would): the values stay, the VR is lost.
void geometry_as_unknown_vr(const fs::path& file) {
  edit(file, [](DcmDataset& d) {
    for (const DcmTagKey& key : {DCM_ImagePositionPatient, DCM_ImageOrientationPatient, DCM_PixelSpacing}) {
      OFString value;
      ASSERT_TRUE(d.findAndGetOFStringArray(key, value).good());
      std::string bytes(value.c_str(), value.length());
      if (bytes.size() % 2) bytes += ' ';
      auto* un = new DcmOtherByteOtherWord(DcmTag(key, EVR_UN));
      un->putUint8Array(reinterpret_cast<const Uint8*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
      d.findAndDeleteElement(key);
      ASSERT_TRUE(d.insert(un, true).good());
    }
  });
}

TEST(UnknownVr, GeometryStoredAsUnIsReadWithItsDictionaryVr) {
  const fs::path dir = st::scratch_dir();
  auto spec = small_series();
  spec.orientation = {1, 0, 0, 0, 0.8, -0.6};
  spec.first_position = {-5, 12, 40};
  const auto files = st::write_series(spec, dir / "un");
  st::write_series(spec, dir / "plain");
  for (const auto& f : files) geometry_as_unknown_vr(f);
  const auto dump = st::run_command(fmt::format("dcmdump '{}'", files.front().string()));
  if (dump.exit_code == 0) {
    EXPECT_NE(dump.out.find("(0020,0032) UN"), std::string::npos) << dump.out;
  }

  const auto a = dcm::load(dcm::select_stack(dcm::scan({dir / "un"}), ""));
  const auto b = dcm::load(dcm::select_stack(dcm::scan({dir / "plain"}), ""));
  const auto& x = *a.volumes.front();
  const auto& y = *b.volumes.front();
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_NEAR(x.GetOrigin()[i], y.GetOrigin()[i], 1e-6);
    EXPECT_NEAR(x.GetSpacing()[i], y.GetSpacing()[i], 1e-6);
    for (unsigned j = 0; j < 3; ++j) EXPECT_NEAR(x.GetDirection()[i][j], y.GetDirection()[i][j], 1e-6);
  }
}

// ---- 4. mixed image types ----------------------------------------------------------------------

TEST(MixedImageTypes, MagnitudeAndPhaseAtTheSamePositionsAreSplit) {
  const fs::path dir = st::scratch_dir();
  auto magnitude = small_series();
  magnitude.modality = "MR";
  magnitude.series_instance_uid = "1.2.826.0.1.3680043.8.498.4242";
  magnitude.image_type = "ORIGINAL\\PRIMARY\\M\\ND";
  magnitude.file_prefix = "mag";
  auto phase = magnitude;
  phase.image_type = "ORIGINAL\\PRIMARY\\P\\ND";
  phase.file_prefix = "pha";
  phase.markers = {{{8, 8, 2}, 1.5, 900}};
  st::write_series(magnitude, dir);
  st::write_series(phase, dir);
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 2u);
  for (const auto& s : scan.stacks) {
    EXPECT_EQ(s.frames.size(), 4u);
    const auto loaded = dcm::load(s);
    EXPECT_EQ(loaded.volumes.size(), 1u) << "stack " << s.id << " came out 4D";
  }
  EXPECT_NE(scan.stacks[1].split_reason.find("phase"), std::string::npos) << scan.stacks[1].split_reason;
}

TEST(MixedImageTypes, EchoesOfOneSeriesAreSplit) {
  const fs::path dir = st::scratch_dir();
  auto e1 = small_series();
  e1.modality = "MR";
  e1.series_instance_uid = "1.2.826.0.1.3680043.8.498.4243";
  e1.file_prefix = "e1";
  auto e2 = e1;
  e2.file_prefix = "e2";
  const auto f1 = st::write_series(e1, dir);
  const auto f2 = st::write_series(e2, dir);
  for (const auto& f : f1) st::set_attribute(f, "0018,0086", "1");
  for (const auto& f : f2) st::set_attribute(f, "0018,0086", "2");
  const auto scan = dcm::scan({dir});
  ASSERT_EQ(scan.stacks.size(), 2u);
  EXPECT_EQ(dcm::load(scan.stacks[0]).volumes.size(), 1u);
}

// ---- 5. derived objects from imperfect sources -------------------------------------------------

TEST(DerivedObjects, SegOfTheAnonymisedRealCtIsValid) {
  SAGITTA_REQUIRE_EXTERNAL(ct, "ct/totalsegmentator/example_ct_dicom");
  const auto series = dcm::load(dcm::select_stack(dcm::scan({ct}), ""));
  ASSERT_TRUE(series.info.study_instance_uid.empty()) << "the shared CT is expected to be anonymised";
  const auto& grid = *series.volumes.front();
  auto labels = dcm::LabelMap::New();
  labels->CopyInformation(&grid);
  labels->SetRegions(grid.GetLargestPossibleRegion());
  labels->Allocate(true);
  const auto size = grid.GetLargestPossibleRegion().GetSize();
  for (itk::IndexValueType k = 2; k < static_cast<itk::IndexValueType>(size[2]) - 2; ++k)
    for (itk::IndexValueType j = 200; j < 300; ++j)
      for (itk::IndexValueType i = 220; i < 300; ++i) labels->SetPixel({{i, j, k}}, 1);
  const fs::path out = st::scratch_dir() / "seg.dcm";
  const auto w = dcm::write_seg(*labels, grid, series.info, {{1, "liver", {200, 100, 50}, {}, {}}}, out);
  EXPECT_EQ(w.notes.size(), 2u);  // study and series UIDs were made up, and the report says so
  if (!have("dciodvfy")) GTEST_SKIP() << "dciodvfy not installed (Debian package dicom3tools)";
  EXPECT_EQ(dciodvfy_errors(out), "");
  // Made-up UIDs are stable: a second object from the same source names the same study.
  const auto w2 = dcm::write_seg(*labels, grid, series.info, {{1, "liver", {200, 100, 50}, {}, {}}},
                                 out.parent_path() / "seg2.dcm");
  DcmFileFormat a, b;
  ASSERT_TRUE(a.loadFile(out.c_str()).good());
  ASSERT_TRUE(b.loadFile((out.parent_path() / "seg2.dcm").c_str()).good());
  OFString sa, sb, cs;
  a.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, sa);
  b.getDataset()->findAndGetOFString(DCM_StudyInstanceUID, sb);
  EXPECT_FALSE(sa.empty());
  EXPECT_EQ(sa, sb);
  a.getDataset()->findAndGetOFString(DCM_SpecificCharacterSet, cs);
  EXPECT_TRUE(cs.empty() || cs == "ISO_IR 192") << cs;
}

TEST(DerivedObjects, Latin1SourceGivesAUtf8Seg) {
  const fs::path dir = st::scratch_dir();
  const auto files = st::write_series(small_series(), dir / "ct");
  for (const auto& f : files)
    edit(f, [](DcmDataset& d) {
      d.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
      d.putAndInsertString(DCM_PatientName, "M\xFCller^J\xFCrgen");
      d.putAndInsertString(DCM_StudyDescription, "Sch\xE4" "del");
    });
  const auto series = dcm::load(dcm::select_stack(dcm::scan({dir / "ct"}), ""));
  const auto& grid = *series.volumes.front();
  auto labels = empty_labels(grid);
  labels->SetPixel({{3, 3, 1}}, 1);
  const fs::path out = dir / "seg.dcm";
  dcm::SegWriteOptions options;
  options.series_description = "Léber";
  dcm::write_seg(*labels, grid, series.info, {{1, "Leber (Lébér)", {200, 100, 50}, {}, {}}}, out, options);
  DcmFileFormat f;
  ASSERT_TRUE(f.loadFile(out.c_str()).good());
  OFString cs, name, study;
  f.getDataset()->findAndGetOFString(DCM_SpecificCharacterSet, cs);
  f.getDataset()->findAndGetOFString(DCM_PatientName, name);
  f.getDataset()->findAndGetOFString(DCM_StudyDescription, study);
  EXPECT_EQ(cs, "ISO_IR 192");
  EXPECT_EQ(std::string(name.c_str()), "Müller^Jürgen");
  EXPECT_EQ(std::string(study.c_str()), "Schädel");
  const auto back = dcm::read_seg(out);
  EXPECT_EQ(back.segments.at(0).name, "Leber (Lébér)");
  if (have("dciodvfy")) {
    EXPECT_EQ(dciodvfy_errors(out), "");
  }
}

// ---- 6. vendor-private geometry ----------------------------------------------------------------

TEST(PrivateGeometry, ImagesPlacedOnlyByPrivateTagsAreRefusedClearly) {
  const fs::path dir = st::scratch_dir();
  const auto files = st::write_series(small_series(), dir);
  for (const auto& f : files) {
    st::set_attribute(f, "0008,0070", "UIH");
    st::remove_attribute(f, "0020,0032");
    edit(f, [](DcmDataset& d) {
      d.putAndInsertString(DcmTag(0x0065, 0x0010, EVR_LO), "Image Private Header");
      d.putAndInsertString(DcmTag(0x0065, 0x1032, EVR_DS), "-16\\-16\\-10");
    });
  }
  try {
    dcm::scan({dir});
    FAIL() << "images without ImagePositionPatient were accepted";
  } catch (const dcm::DicomError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("private"), std::string::npos) << what;
    EXPECT_NE(what.find("UIH"), std::string::npos) << what;
  }
}

}  // namespace
