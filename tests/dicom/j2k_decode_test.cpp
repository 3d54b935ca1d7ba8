// The JPEG 2000 decoder (dicom/src/j2k_codec.cpp) against GDCM as an independent peer: GDCM
// decompresses (gdcmconv --raw) or compresses (gdcmconv --j2k) and DCMTK with our decoder must
// produce the same samples, value for value, through every DCMTK decoding path.
#include "j2k_codec.h"
#include "support/dicom_fixups.h"
#include "support/test_paths.h"

#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmimgle/dcmimage.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using sagitta::testing::run_command;
using sagitta::testing::scratch_dir;

namespace {
using sagitta::testing::copy_with_sop_uids;

constexpr const char* kCtFolder = "ct/totalsegmentator/example_ct_dicom";

bool have_gdcmconv() { return run_command("command -v gdcmconv").exit_code == 0; }

#define REQUIRE_GDCMCONV()                                                                \
  do {                                                                                    \
    if (!have_gdcmconv())                                                                 \
      GTEST_SKIP() << "gdcmconv not found (Debian package libgdcm-tools); it is the peer " \
                      "decoder/encoder these tests compare against";                      \
  } while (false)

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

std::vector<fs::path> dicom_files(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::unique_ptr<DcmFileFormat> load(const fs::path& file) {
  auto ff = std::make_unique<DcmFileFormat>();
  const OFCondition status = ff->loadFile(file.c_str());
  if (status.bad()) {
    ADD_FAILURE() << "cannot load " << file << ": " << status.text();
    return nullptr;
  }
  return ff;
}

E_TransferSyntax xfer_of(DcmFileFormat& ff) { return ff.getDataset()->getOriginalXfer(); }

Uint16 u16(DcmItem& item, const DcmTagKey& tag) {
  Uint16 value = 0;
  item.findAndGetUint16(tag, value);
  return value;
}

Sint32 frames_of(DcmItem& item) {
  Sint32 frames = 1;
  if (item.findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
  return frames;
}

std::string photometric(DcmItem& item) {
  OFString value;
  item.findAndGetOFString(DCM_PhotometricInterpretation, value);
  return value.c_str();
}

std::size_t frame_bytes(DcmItem& item) {
  return std::size_t(u16(item, DCM_Rows)) * u16(item, DCM_Columns) *
         u16(item, DCM_SamplesPerPixel) * (u16(item, DCM_BitsAllocated) / 8u);
}

// The uncompressed pixel bytes (host order words for 16-bit data), trimmed to the image size.
std::vector<Uint8> pixel_bytes(DcmDataset& dataset) {
  DcmElement* element = nullptr;
  if (dataset.findAndGetElement(DCM_PixelData, element).bad() || !element) return {};
  Uint8* bytes = nullptr;
  if (element->getUint8Array(bytes).bad() || !bytes) return {};
  const std::size_t expected = frame_bytes(dataset) * std::size_t(frames_of(dataset));
  if (element->getLength() < expected) return {};
  return std::vector<Uint8>(bytes, bytes + expected);
}

DcmPixelSequence* encapsulated(DcmDataset& dataset) {
  DcmElement* element = nullptr;
  if (dataset.findAndGetElement(DCM_PixelData, element).bad() || !element) return nullptr;
  DcmPixelSequence* sequence = nullptr;
  auto* pixel = static_cast<DcmPixelData*>(element);
  if (pixel->getEncapsulatedRepresentation(dataset.getOriginalXfer(), nullptr, sequence).bad())
    return nullptr;
  return sequence;
}

std::vector<Uint8> fragment_bytes(DcmPixelSequence& sequence, unsigned long index) {
  DcmPixelItem* item = nullptr;
  Uint8* bytes = nullptr;
  if (sequence.getItem(item, index).bad() || item->getUint8Array(bytes).bad() || !bytes) return {};
  return std::vector<Uint8>(bytes, bytes + item->getLength());
}

// Rebuilds the pixel sequence from the given fragments (index 0 is the offset table's content).
void replace_fragments(DcmPixelSequence& sequence, const std::vector<std::vector<Uint8>>& items) {
  while (sequence.card() > 0) {
    DcmPixelItem* old = nullptr;
    ASSERT_TRUE(sequence.remove(old, 0).good());
    delete old;
  }
  for (const auto& bytes : items) {
    auto* item = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
    ASSERT_TRUE(item->putUint8Array(bytes.data(), Uint32(bytes.size())).good());
    ASSERT_TRUE(sequence.insert(item).good());
  }
}

// Decodes the whole image through the standard DCMTK entry point.
OFCondition decode_all(DcmDataset& dataset) {
  return dataset.chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
}

// Decodes every frame through DCMTK's partial-access path (DcmCodec::decodeFrame), the one
// DicomImage uses for large multi-frame objects.
OFCondition decode_by_frames(DcmDataset& dataset, std::vector<Uint8>& out, OFString& color_model) {
  DcmElement* element = nullptr;
  OFCondition status = dataset.findAndGetElement(DCM_PixelData, element);
  if (status.bad()) return status;
  const std::size_t size = frame_bytes(dataset);
  const Sint32 frames = frames_of(dataset);
  out.assign(size * std::size_t(frames), 0);
  std::vector<Uint8> buffer(size + (size & 1u));
  Uint32 start_fragment = 0;
  for (Sint32 f = 0; f < frames; ++f) {
    status = element->getUncompressedFrame(&dataset, Uint32(f), start_fragment, buffer.data(),
                                           Uint32(buffer.size()), color_model);
    if (status.bad()) return status;
    std::copy_n(buffer.begin(), size, out.begin() + std::ptrdiff_t(f * size));
  }
  return EC_Normal;
}

// Runs `gdcmconv <option> in out`; returns `out`, or empty (with a test failure) on error.
fs::path gdcmconv(const std::string& option, const fs::path& in, const fs::path& out) {
  const auto result = run_command("gdcmconv " + option + " " + quoted(in) + " " + quoted(out));
  if (result.exit_code != 0) {
    ADD_FAILURE() << "gdcmconv " << option << " " << in << " failed: " << result.err << result.out;
    return {};
  }
  return out;
}

// --- synthetic images, compressed by GDCM ---------------------------------------------------

struct Synthetic {
  Uint16 rows = 17, columns = 33, samples = 1, bits_allocated = 8, bits_stored = 8;
  bool is_signed = false;
  int frames = 1;
  const char* photometric = "MONOCHROME2";
};

// Deterministic content with edges, gradients and noise over the full stored range, so that a
// wrong sign, bit depth, sample order or frame order shows up as a mismatch.
std::vector<Uint8> synthetic_pixels(const Synthetic& s) {
  std::mt19937 random(1234);
  const int bits = s.bits_stored;
  const std::int64_t lo = s.is_signed ? -(std::int64_t(1) << (bits - 1)) : 0;
  const std::int64_t hi = s.is_signed ? (std::int64_t(1) << (bits - 1)) - 1
                                      : (std::int64_t(1) << bits) - 1;
  std::uniform_int_distribution<std::int64_t> noise(lo, hi);
  const std::size_t bytes = s.bits_allocated / 8u;
  std::vector<Uint8> out;
  for (int f = 0; f < s.frames; ++f)
    for (int y = 0; y < s.rows; ++y)
      for (int x = 0; x < s.columns; ++x)
        for (int c = 0; c < s.samples; ++c) {
          std::int64_t v;
          if ((x + f) % 7 == 0) v = noise(random);
          else if (y < s.rows / 3) v = lo;
          else if (y < 2 * s.rows / 3) v = hi;
          else v = lo + (hi - lo) * (x * s.samples + c + f) / (s.columns * s.samples + s.frames);
          const auto word = std::uint16_t(v);  // two's complement, sign extended
          out.push_back(Uint8(word & 0xFF));
          if (bytes == 2) out.push_back(Uint8(word >> 8));
        }
  return out;
}

fs::path write_synthetic(const Synthetic& s, const std::vector<Uint8>& pixels, const fs::path& file) {
  DcmFileFormat ff;
  DcmDataset& d = *ff.getDataset();
  char uid[100];
  // GDCM insists on a multi-frame SOP class for multi-frame images.
  const char* sop_class = UID_SecondaryCaptureImageStorage;
  if (s.frames > 1 && s.samples == 3) sop_class = UID_MultiframeTrueColorSecondaryCaptureImageStorage;
  else if (s.frames > 1 && s.bits_allocated == 8) sop_class = UID_MultiframeGrayscaleByteSecondaryCaptureImageStorage;
  else if (s.frames > 1) sop_class = UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage;
  d.putAndInsertString(DCM_SOPClassUID, sop_class);
  d.putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
  d.putAndInsertString(DCM_StudyInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_STUDY_UID_ROOT));
  d.putAndInsertString(DCM_SeriesInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT));
  d.putAndInsertString(DCM_Modality, "OT");
  d.putAndInsertString(DCM_PatientName, "J2K^Synthetic");
  d.putAndInsertUint16(DCM_Rows, s.rows);
  d.putAndInsertUint16(DCM_Columns, s.columns);
  d.putAndInsertUint16(DCM_SamplesPerPixel, s.samples);
  d.putAndInsertString(DCM_PhotometricInterpretation, s.photometric);
  if (s.samples > 1) d.putAndInsertUint16(DCM_PlanarConfiguration, 0);
  d.putAndInsertUint16(DCM_BitsAllocated, s.bits_allocated);
  d.putAndInsertUint16(DCM_BitsStored, s.bits_stored);
  d.putAndInsertUint16(DCM_HighBit, Uint16(s.bits_stored - 1));
  d.putAndInsertUint16(DCM_PixelRepresentation, s.is_signed ? 1 : 0);
  if (s.frames > 1) d.putAndInsertString(DCM_NumberOfFrames, std::to_string(s.frames).c_str());
  if (s.bits_allocated == 8) {
    d.putAndInsertUint8Array(DCM_PixelData, pixels.data(), Uint32(pixels.size()));
  } else {
    std::vector<Uint16> words(pixels.size() / 2);
    for (std::size_t i = 0; i < words.size(); ++i)
      words[i] = Uint16(pixels[2 * i] | pixels[2 * i + 1] << 8);
    d.putAndInsertUint16Array(DCM_PixelData, words.data(), Uint32(words.size()));
  }
  EXPECT_TRUE(ff.saveFile(file.c_str(), EXS_LittleEndianExplicit).good());
  return file;
}

// Host-order words as stored by DCMTK, back to the little-endian byte stream of the file.
std::vector<Uint8> to_little_endian(std::vector<Uint8> bytes, Uint16 bits_allocated) {
  if (bits_allocated == 16 && gLocalByteOrder == EBO_BigEndian)
    for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) std::swap(bytes[i], bytes[i + 1]);
  return bytes;
}

// Wraps a raw codestream in the minimal JP2 file structure (signature, ftyp, jp2h, jp2c), as
// some encoders store it in DICOM.
std::vector<Uint8> wrap_jp2(const std::vector<Uint8>& codestream, Uint32 rows, Uint32 columns,
                            Uint16 components, Uint8 precision, bool is_signed) {
  const auto be32 = [](std::vector<Uint8>& v, Uint32 x) {
    for (int shift = 24; shift >= 0; shift -= 8) v.push_back(Uint8(x >> shift));
  };
  const auto box = [&](const char* type, const std::vector<Uint8>& payload) {
    std::vector<Uint8> b;
    be32(b, Uint32(payload.size() + 8));
    b.insert(b.end(), type, type + 4);
    b.insert(b.end(), payload.begin(), payload.end());
    return b;
  };
  std::vector<Uint8> out{0x00, 0x00, 0x00, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
  const auto ftyp = box("ftyp", {'j', 'p', '2', ' ', 0, 0, 0, 0, 'j', 'p', '2', ' '});
  std::vector<Uint8> ihdr;
  be32(ihdr, rows);
  be32(ihdr, columns);
  ihdr.push_back(Uint8(components >> 8));
  ihdr.push_back(Uint8(components));
  ihdr.push_back(Uint8((precision - 1) | (is_signed ? 0x80 : 0)));
  ihdr.insert(ihdr.end(), {7, 0, 0});  // compression type, colour space known, no IPR
  std::vector<Uint8> colr{1, 0, 0};     // enumerated colour space follows
  be32(colr, components == 3 ? 16u : 17u);  // sRGB or greyscale
  auto header = box("ihdr", ihdr);
  const auto colr_box = box("colr", colr);
  header.insert(header.end(), colr_box.begin(), colr_box.end());
  for (const auto& part : {ftyp, box("jp2h", header), box("jp2c", codestream)})
    out.insert(out.end(), part.begin(), part.end());
  if (out.size() & 1u) out.push_back(0);  // DICOM fragments have even length
  return out;
}

class J2kDecode : public ::testing::Test {
 protected:
  void SetUp() override { sagitta::dicom::detail::register_j2k_decoder(); }
};

// --- the real CT series ------------------------------------------------------------------------

TEST_F(J2kDecode, RealCtSlicesMatchGdcmValueForValue) {
  REQUIRE_GDCMCONV();
  SAGITTA_REQUIRE_EXTERNAL(dir, kCtFolder);
  const fs::path scratch = scratch_dir();
  int compared = 0;
  std::size_t samples_compared = 0;
  for (const fs::path& file : dicom_files(dir)) {
    SCOPED_TRACE(file.filename().string());
    const fs::path fixed = copy_with_sop_uids(file, scratch / (file.filename().string() + ".in"));
    ASSERT_FALSE(fixed.empty());
    const fs::path raw = gdcmconv("--raw", fixed, scratch / (file.filename().string() + ".raw"));
    ASSERT_FALSE(raw.empty());

    auto ours = load(file);
    auto peer = load(raw);
    ASSERT_TRUE(ours && peer);
    DcmDataset& a = *ours->getDataset();
    DcmDataset& b = *peer->getDataset();
    ASSERT_EQ(xfer_of(*ours), EXS_JPEG2000LosslessOnly);
    ASSERT_EQ(xfer_of(*peer), EXS_LittleEndianExplicit);

    const OFCondition status = decode_all(a);
    ASSERT_TRUE(status.good()) << status.text();
    EXPECT_EQ(u16(a, DCM_Rows), u16(b, DCM_Rows));
    EXPECT_EQ(u16(a, DCM_Columns), u16(b, DCM_Columns));
    EXPECT_EQ(u16(a, DCM_Rows), 512);
    EXPECT_EQ(u16(a, DCM_Columns), 512);
    EXPECT_EQ(frames_of(a), frames_of(b));
    EXPECT_EQ(photometric(a), photometric(b));

    const Uint16* ours_words = nullptr;
    const Uint16* peer_words = nullptr;
    unsigned long ours_count = 0, peer_count = 0;
    ASSERT_TRUE(a.findAndGetUint16Array(DCM_PixelData, ours_words, &ours_count).good());
    ASSERT_TRUE(b.findAndGetUint16Array(DCM_PixelData, peer_words, &peer_count).good());
    ASSERT_EQ(ours_count, peer_count);
    ASSERT_EQ(ours_count, 512ul * 512ul * unsigned(frames_of(a)));
    std::size_t differing = 0;
    for (unsigned long i = 0; i < ours_count; ++i) differing += ours_words[i] != peer_words[i];
    EXPECT_EQ(differing, 0u) << "samples that differ from GDCM's decode";
    samples_compared += ours_count;
    ++compared;
  }
  EXPECT_EQ(compared, 20);
  std::cout << "[ info     ] " << compared << " JPEG 2000 files, " << samples_compared
            << " samples compared with gdcmconv --raw\n";
}

TEST_F(J2kDecode, RealCtFramePathAndDicomImageMatchGdcm) {
  REQUIRE_GDCMCONV();
  SAGITTA_REQUIRE_EXTERNAL(dir, kCtFolder);
  const fs::path scratch = scratch_dir();
  const fs::path file = dicom_files(dir).front();
  const fs::path raw =
      gdcmconv("--raw", copy_with_sop_uids(file, scratch / "in.dcm"), scratch / "raw.dcm");
  ASSERT_FALSE(raw.empty());

  // DcmCodec::decodeFrame, without decompressing the dataset.
  auto ours = load(file);
  auto peer = load(raw);
  ASSERT_TRUE(ours && peer);
  std::vector<Uint8> frames;
  OFString model;
  const OFCondition status = decode_by_frames(*ours->getDataset(), frames, model);
  ASSERT_TRUE(status.good()) << status.text();
  EXPECT_EQ(model, "MONOCHROME2");
  EXPECT_EQ(xfer_of(*ours), EXS_JPEG2000LosslessOnly) << "partial access must not decompress";
  EXPECT_EQ(frames, pixel_bytes(*peer->getDataset()));

  // DicomImage, both with full decompression and with partial access to the pixel data (where
  // DCMTK decodes frame by frame and leaves the dataset compressed).
  for (const bool partial : {false, true}) {
    SCOPED_TRACE(partial ? "partial access" : "full decompression");
    const unsigned long flags = partial ? CIF_UsePartialAccessToPixelData : 0;
    DcmFileFormat ours_file;
    ASSERT_TRUE(ours_file.loadFile(file.c_str()).good());
    DicomImage ours_image(&ours_file, EXS_JPEG2000LosslessOnly, flags);
    DicomImage peer_image(raw.c_str(), flags);
    ASSERT_EQ(ours_image.getStatus(), EIS_Normal)
        << DicomImage::getString(ours_image.getStatus());
    ASSERT_EQ(peer_image.getStatus(), EIS_Normal);
    EXPECT_EQ(ours_file.getDataset()->hasRepresentation(EXS_LittleEndianExplicit, nullptr),
              !partial);
    const void* ours_out = ours_image.getOutputData(16);
    const void* peer_out = peer_image.getOutputData(16);
    ASSERT_TRUE(ours_out && peer_out);
    ASSERT_EQ(ours_image.getOutputDataSize(16), peer_image.getOutputDataSize(16));
    EXPECT_EQ(std::memcmp(ours_out, peer_out, ours_image.getOutputDataSize(16)), 0);
  }
}

TEST_F(J2kDecode, ConcurrentDecodesOfDifferentDatasetsAgree) {
  SAGITTA_REQUIRE_EXTERNAL(dir, kCtFolder);
  const std::vector<fs::path> files = dicom_files(dir);
  std::vector<std::vector<Uint8>> serial(files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    auto ff = load(files[i]);
    ASSERT_TRUE(ff && decode_all(*ff->getDataset()).good());
    serial[i] = pixel_bytes(*ff->getDataset());
  }
  std::vector<std::vector<Uint8>> parallel(files.size());
  std::vector<std::string> errors(files.size());
  std::vector<std::thread> threads;
  constexpr std::size_t kThreads = 4;
  for (std::size_t t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < files.size(); i += kThreads) {
        DcmFileFormat ff;
        OFCondition status = ff.loadFile(files[i].c_str());
        if (status.good()) status = decode_all(*ff.getDataset());
        if (status.bad()) errors[i] = status.text();
        else parallel[i] = pixel_bytes(*ff.getDataset());
      }
    });
  for (auto& thread : threads) thread.join();
  for (std::size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(errors[i], "") << files[i];
    EXPECT_TRUE(parallel[i] == serial[i]) << files[i];
  }
}

// --- damaged data --------------------------------------------------------------------------------

TEST_F(J2kDecode, TruncatedFileFailsCleanly) {
  SAGITTA_REQUIRE_EXTERNAL(dir, kCtFolder);
  const fs::path scratch = scratch_dir();
  const fs::path source = dicom_files(dir).front();
  const fs::path truncated = scratch / "truncated.dcm";
  {
    std::ifstream in(source, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes.resize(bytes.size() * 6 / 10);  // cut the last 40%
    std::ofstream(truncated, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  }
  // DCMTK may already refuse the file; if it reads what is there, decoding must fail.
  DcmFileFormat ff;
  OFCondition status = ff.loadFile(truncated.c_str());
  const bool loaded = status.good();
  if (loaded) status = decode_all(*ff.getDataset());
  EXPECT_TRUE(status.bad()) << "a truncated file decoded successfully";
  std::cout << "[ info     ] truncated file: " << (loaded ? "decoding" : "DCMTK's loadFile")
            << " failed: " << status.text() << "\n";

  // The codec itself, given a well-formed dataset whose codestream is cut to 60%.
  auto intact = load(source);
  ASSERT_TRUE(intact);
  DcmPixelSequence* sequence = encapsulated(*intact->getDataset());
  ASSERT_NE(sequence, nullptr);
  std::vector<Uint8> codestream = fragment_bytes(*sequence, 1);
  codestream.resize((codestream.size() * 6 / 10) & ~std::size_t(1));
  replace_fragments(*sequence, {{}, codestream});
  std::vector<Uint8> frames;
  OFString model;
  status = decode_by_frames(*intact->getDataset(), frames, model);
  EXPECT_TRUE(status.bad()) << "partial access decoded a truncated codestream";
  status = decode_all(*intact->getDataset());
  EXPECT_TRUE(status.bad()) << "a truncated codestream decoded successfully";
  EXPECT_NE(std::string(status.text()).find("JPEG 2000"), std::string::npos) << status.text();
}

TEST_F(J2kDecode, CorruptCodestreamsNeverCrash) {
  SAGITTA_REQUIRE_EXTERNAL(dir, kCtFolder);
  const fs::path source = dicom_files(dir).front();
  std::vector<Uint8> original;
  {
    auto ff = load(source);
    ASSERT_TRUE(ff);
    DcmPixelSequence* sequence = encapsulated(*ff->getDataset());
    ASSERT_NE(sequence, nullptr);
    original = fragment_bytes(*sequence, 1);
  }
  ASSERT_GT(original.size(), 1000u);

  // Damage in the middle of the packet data, in the main header (image size, tiling, coding
  // style) and at random places. Each variant must return a condition: good (OpenJPEG can
  // survive some damage to entropy-coded data) or bad, but no crash and no sanitizer report.
  std::mt19937 random(42);
  std::vector<std::vector<Uint8>> variants;
  const std::size_t middle = original.size() / 2;
  for (const std::size_t span : {1ul, 16ul, 256ul}) {
    auto v = original;
    for (std::size_t i = 0; i < span; ++i) v[middle + i] = Uint8(random());
    variants.push_back(v);
  }
  for (std::size_t offset = 4; offset < 120; offset += 3) {
    auto v = original;
    v[offset] ^= 0xFF;
    variants.push_back(v);
  }
  for (int trial = 0; trial < 20; ++trial) {
    auto v = original;
    for (int k = 0; k < 8; ++k) v[random() % v.size()] = Uint8(random());
    variants.push_back(v);
  }
  int failed = 0;
  for (const auto& bytes : variants) {
    auto ff = load(source);
    ASSERT_TRUE(ff);
    DcmPixelSequence* sequence = encapsulated(*ff->getDataset());
    replace_fragments(*sequence, {{}, bytes});
    const OFCondition status = decode_all(*ff->getDataset());
    if (status.bad()) {
      ++failed;
    } else {
      EXPECT_EQ(pixel_bytes(*ff->getDataset()).size(), 512u * 512u * 2u);
    }
  }
  EXPECT_GT(failed, 0) << "no damaged codestream was reported as an error";
  std::cout << "[ info     ] " << variants.size() << " damaged codestreams, " << failed
            << " reported as errors, none crashed\n";
}

// --- synthetic images compressed by GDCM ---------------------------------------------------------

struct Case {
  const char* name;
  Synthetic spec;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }  // readable ctest listings

class J2kSynthetic : public J2kDecode, public ::testing::WithParamInterface<Case> {};

// Compresses with `gdcmconv --j2k` and checks that both DCMTK paths give back the original.
TEST_P(J2kSynthetic, RoundTripThroughGdcmEncoder) {
  REQUIRE_GDCMCONV();
  const Synthetic& spec = GetParam().spec;
  const fs::path scratch = scratch_dir();
  const std::vector<Uint8> pixels = synthetic_pixels(spec);
  const fs::path plain = write_synthetic(spec, pixels, scratch / "plain.dcm");
  const fs::path compressed = gdcmconv("--j2k", plain, scratch / "j2k.dcm");
  ASSERT_FALSE(compressed.empty());

  auto ff = load(compressed);
  ASSERT_TRUE(ff);
  DcmDataset& dataset = *ff->getDataset();
  ASSERT_EQ(xfer_of(*ff), EXS_JPEG2000LosslessOnly) << "gdcmconv --j2k should be lossless";
  const std::string stored_photometric = photometric(dataset);

  std::vector<Uint8> frames;
  OFString model;
  OFCondition status = decode_by_frames(dataset, frames, model);
  ASSERT_TRUE(status.good()) << status.text();
  EXPECT_EQ(to_little_endian(frames, spec.bits_allocated), pixels) << "partial access path";
  EXPECT_EQ(model, spec.photometric);

  status = decode_all(dataset);
  ASSERT_TRUE(status.good()) << status.text();
  EXPECT_EQ(to_little_endian(pixel_bytes(dataset), spec.bits_allocated), pixels);
  EXPECT_EQ(photometric(dataset), spec.photometric) << "stored as " << stored_photometric;
  if (spec.samples == 3) {
    EXPECT_EQ(u16(dataset, DCM_PlanarConfiguration), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, J2kSynthetic,
    ::testing::Values(
        Case{"Unsigned8BitOddSizeThreeFrames", {17, 33, 1, 8, 8, false, 3, "MONOCHROME2"}},
        Case{"Signed16BitStored12TwoFrames", {40, 24, 1, 16, 12, true, 2, "MONOCHROME2"}},
        Case{"Unsigned16BitFullRange", {31, 29, 1, 16, 16, false, 1, "MONOCHROME2"}},
        Case{"Signed16BitFullRange", {20, 22, 1, 16, 16, true, 1, "MONOCHROME2"}},
        Case{"Rgb8BitTwoFrames", {21, 19, 3, 8, 8, false, 2, "RGB"}},
        Case{"Unsigned16BitStored12", {31, 29, 1, 16, 12, false, 1, "MONOCHROME2"}},
        Case{"Rgb8BitOddSize", {15, 13, 3, 8, 8, false, 1, "RGB"}}),
    [](const auto& test) { return std::string(test.param.name); });

// Frames split over several fragments, found through the offset table or, without one, through
// the codestream markers; and codestreams wrapped as JP2 files.
TEST_F(J2kDecode, FragmentedFramesAndJp2Wrapping) {
  REQUIRE_GDCMCONV();
  const Synthetic spec{40, 24, 1, 16, 12, true, 3, "MONOCHROME2"};
  const fs::path scratch = scratch_dir();
  const std::vector<Uint8> pixels = synthetic_pixels(spec);
  const fs::path compressed =
      gdcmconv("--j2k", write_synthetic(spec, pixels, scratch / "plain.dcm"), scratch / "j2k.dcm");
  ASSERT_FALSE(compressed.empty());

  std::vector<std::vector<Uint8>> codestreams;
  {
    auto ff = load(compressed);
    ASSERT_TRUE(ff);
    DcmPixelSequence* sequence = encapsulated(*ff->getDataset());
    ASSERT_NE(sequence, nullptr);
    ASSERT_EQ(sequence->card(), 4ul) << "expected one fragment per frame from GDCM";
    for (unsigned long i = 1; i < sequence->card(); ++i)
      codestreams.push_back(fragment_bytes(*sequence, i));
  }

  // Splits each codestream into three even-sized fragments.
  const auto split = [](const std::vector<Uint8>& bytes) {
    const std::size_t third = (bytes.size() / 3) & ~std::size_t(1);
    return std::vector<std::vector<Uint8>>{
        {bytes.begin(), bytes.begin() + std::ptrdiff_t(third)},
        {bytes.begin() + std::ptrdiff_t(third), bytes.begin() + std::ptrdiff_t(2 * third)},
        {bytes.begin() + std::ptrdiff_t(2 * third), bytes.end()}};
  };
  const auto offset_table = [](const std::vector<std::vector<Uint8>>& per_frame_items,
                               std::size_t items_per_frame) {
    std::vector<Uint8> table;
    Uint32 offset = 0;
    for (std::size_t i = 0; i < per_frame_items.size(); ++i) {
      if (i % items_per_frame == 0)
        for (int shift = 0; shift < 32; shift += 8) table.push_back(Uint8(offset >> shift));
      offset += Uint32(per_frame_items[i].size() + 8);
    }
    return table;
  };

  std::vector<std::vector<Uint8>> split_items;
  for (const auto& cs : codestreams)
    for (auto& part : split(cs)) split_items.push_back(std::move(part));
  std::vector<std::vector<Uint8>> jp2_items;
  for (const auto& cs : codestreams)
    jp2_items.push_back(wrap_jp2(cs, spec.rows, spec.columns, 1, 12, true));

  struct Layout {
    const char* name;
    std::vector<std::vector<Uint8>> items;  // without the offset table
    std::vector<Uint8> table;
  };
  const std::vector<Layout> layouts = {
      {"three fragments per frame, empty offset table", split_items, {}},
      {"three fragments per frame, offset table", split_items, offset_table(split_items, 3)},
      {"JP2 files", jp2_items, {}},
  };
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.name);
    auto ff = load(compressed);
    ASSERT_TRUE(ff);
    DcmDataset& dataset = *ff->getDataset();
    std::vector<std::vector<Uint8>> items{layout.table};
    items.insert(items.end(), layout.items.begin(), layout.items.end());
    replace_fragments(*encapsulated(dataset), items);

    std::vector<Uint8> frames;
    OFString model;
    OFCondition status = decode_by_frames(dataset, frames, model);
    ASSERT_TRUE(status.good()) << status.text();
    EXPECT_EQ(to_little_endian(frames, 16), pixels) << "partial access path";
    status = decode_all(dataset);
    ASSERT_TRUE(status.good()) << status.text();
    EXPECT_EQ(to_little_endian(pixel_bytes(dataset), 16), pixels);
  }
}

// GDCM compresses RGB without the multiple component transform. Switching the transform on in
// the codestream and saying YBR_RCT in the header (as the standard requires for that case) must
// give RGB: OpenJPEG's inverse reversible colour transform of the stored components, interleaved,
// with PhotometricInterpretation updated. With the header saying YBR_RCT but the transform off,
// the components are passed through as RGB.
TEST_F(J2kDecode, ReversibleColourTransformDecodesToRgb) {
  REQUIRE_GDCMCONV();
  const Synthetic spec{15, 13, 3, 8, 8, false, 1, "RGB"};
  const fs::path scratch = scratch_dir();
  const std::vector<Uint8> pixels = synthetic_pixels(spec);
  const fs::path compressed =
      gdcmconv("--j2k", write_synthetic(spec, pixels, scratch / "plain.dcm"), scratch / "j2k.dcm");
  ASSERT_FALSE(compressed.empty());

  // Inverse RCT (ITU-T T.800 G.2) on DC-shifted samples, then the shift back and clamping.
  std::vector<Uint8> transformed(pixels.size());
  for (std::size_t i = 0; i + 2 < pixels.size(); i += 3) {
    const int y = pixels[i] - 128, cb = pixels[i + 1] - 128, cr = pixels[i + 2] - 128;
    const int g = y - ((cb + cr) >> 2);
    const int rgb[3] = {cr + g, g, cb + g};
    for (int c = 0; c < 3; ++c) transformed[i + std::size_t(c)] = Uint8(std::clamp(rgb[c] + 128, 0, 255));
  }

  for (const bool transform_on : {true, false}) {
    SCOPED_TRACE(transform_on ? "component transform on" : "component transform off");
    auto ff = load(compressed);
    ASSERT_TRUE(ff);
    DcmDataset& dataset = *ff->getDataset();
    DcmPixelSequence* sequence = encapsulated(dataset);
    ASSERT_NE(sequence, nullptr);
    std::vector<Uint8> codestream = fragment_bytes(*sequence, 1);
    // COD marker: FF52, Lcod (2), Scod (1), progression order (1), layers (2), MCT flag (1).
    const std::vector<Uint8> cod_marker{0xFF, 0x52};
    const auto cod = std::search(codestream.begin() + 2, codestream.end(), cod_marker.begin(),
                                 cod_marker.end());
    ASSERT_NE(cod, codestream.end());
    ASSERT_EQ(cod[8], 0) << "GDCM was expected to compress RGB without the component transform";
    cod[8] = transform_on ? 1 : 0;
    replace_fragments(*sequence, {{}, codestream});
    dataset.putAndInsertString(DCM_PhotometricInterpretation, "YBR_RCT");
    const std::vector<Uint8>& expected = transform_on ? transformed : pixels;

    std::vector<Uint8> frames;
    OFString model;
    OFCondition status = decode_by_frames(dataset, frames, model);
    ASSERT_TRUE(status.good()) << status.text();
    EXPECT_EQ(model, "RGB");
    EXPECT_EQ(photometric(dataset), "YBR_RCT") << "partial access must not change the header";
    EXPECT_EQ(frames, expected);

    status = decode_all(dataset);
    ASSERT_TRUE(status.good()) << status.text();
    EXPECT_EQ(photometric(dataset), "RGB");
    EXPECT_EQ(u16(dataset, DCM_PlanarConfiguration), 0);
    EXPECT_EQ(pixel_bytes(dataset), expected);
  }
}

// Some encoders write a codestream whose signedness contradicts PixelRepresentation. The decoder
// then takes the low BitsStored bits as the pattern the encoder was given and stores it with the
// signedness the DICOM header declares. (GDCM writes 12-bit data as 16-bit components, so this
// also covers codestream precision > BitsStored.)
TEST_F(J2kDecode, SignednessMismatchReinterpretsTheBitPattern) {
  REQUIRE_GDCMCONV();
  for (const bool codestream_signed : {true, false}) {
    SCOPED_TRACE(codestream_signed ? "signed codestream, PixelRepresentation 0"
                                   : "unsigned codestream, PixelRepresentation 1");
    const Synthetic spec{12, 10, 1, 16, 12, codestream_signed, 1, "MONOCHROME2"};
    const fs::path scratch = scratch_dir();
    const std::vector<Uint8> pixels = synthetic_pixels(spec);
    const fs::path compressed = gdcmconv(
        "--j2k", write_synthetic(spec, pixels, scratch / "plain.dcm"), scratch / "j2k.dcm");
    ASSERT_FALSE(compressed.empty());
    auto ff = load(compressed);
    ASSERT_TRUE(ff);
    DcmDataset& dataset = *ff->getDataset();
    dataset.putAndInsertUint16(DCM_PixelRepresentation, codestream_signed ? 0 : 1);

    std::vector<Uint8> expected;
    for (std::size_t i = 0; i + 1 < pixels.size(); i += 2) {
      const std::uint16_t bits = std::uint16_t(pixels[i] | pixels[i + 1] << 8) & 0x0FFF;
      const std::uint16_t word =
          (!codestream_signed && (bits & 0x0800)) ? std::uint16_t(bits | 0xF000) : bits;
      expected.push_back(Uint8(word & 0xFF));
      expected.push_back(Uint8(word >> 8));
    }
    const OFCondition status = decode_all(dataset);
    ASSERT_TRUE(status.good()) << status.text();
    EXPECT_EQ(to_little_endian(pixel_bytes(dataset), 16), expected);
  }
}

TEST_F(J2kDecode, MoreFramesThanCodestreamsIsAnError) {
  REQUIRE_GDCMCONV();
  const Synthetic spec{16, 16, 1, 8, 8, false, 2, "MONOCHROME2"};
  const fs::path scratch = scratch_dir();
  const fs::path compressed = gdcmconv(
      "--j2k", write_synthetic(spec, synthetic_pixels(spec), scratch / "plain.dcm"),
      scratch / "j2k.dcm");
  ASSERT_FALSE(compressed.empty());
  auto ff = load(compressed);
  ASSERT_TRUE(ff);
  ff->getDataset()->putAndInsertString(DCM_NumberOfFrames, "5");
  EXPECT_TRUE(decode_all(*ff->getDataset()).bad());
}

TEST_F(J2kDecode, RegistrationIsIdempotentAndReversible) {
  SAGITTA_REQUIRE_EXTERNAL(dir, kCtFolder);
  const fs::path file = dicom_files(dir).front();
  sagitta::dicom::detail::register_j2k_decoder();  // a second registration is a no-op
  {
    auto ff = load(file);
    ASSERT_TRUE(ff && decode_all(*ff->getDataset()).good());
  }
  sagitta::dicom::detail::unregister_j2k_decoder();
  sagitta::dicom::detail::unregister_j2k_decoder();
  {
    auto ff = load(file);
    ASSERT_TRUE(ff);
    EXPECT_TRUE(decode_all(*ff->getDataset()).bad()) << "decoded without a registered codec";
  }
  sagitta::dicom::detail::register_j2k_decoder();
  {
    auto ff = load(file);
    ASSERT_TRUE(ff && decode_all(*ff->getDataset()).good());
    // Decoder only: once the compressed original is dropped, JPEG 2000 cannot be produced.
    ff->getDataset()->removeAllButCurrentRepresentations();
    EXPECT_TRUE(ff->getDataset()->chooseRepresentation(EXS_JPEG2000LosslessOnly, nullptr).bad());
  }
}

}  // namespace
