// The DICOMweb client's multipart/related reader and writer and its header helpers, on bodies
// written here byte by byte the way RFC 2046 spells them (and the ways servers bend it): every
// part's bytes come back exactly, whatever the pieces the network delivers; truncated or
// boundary-less bodies are refused. The round trips with real servers are in dicomweb_test.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "http.h"
#include "multipart.h"
#include "sagitta/dicom/error.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dd = sagitta::dicom::detail;
namespace st = sagitta::testing;

struct Parsed {
  std::vector<std::string> bodies;
  std::vector<dd::MultipartReader::Headers> headers;
  std::size_t ends = 0;
};

// Feeds `body` in pieces of `chunk` bytes (0: all at once) and finishes.
Parsed parse(const std::string& body, const std::string& boundary, std::size_t chunk = 0) {
  Parsed p;
  dd::MultipartReader::Handlers h;
  h.begin = [&](std::size_t index, const dd::MultipartReader::Headers& headers) {
    EXPECT_EQ(index, p.bodies.size());
    p.bodies.emplace_back();
    p.headers.push_back(headers);
  };
  h.data = [&](const char* d, std::size_t n) { p.bodies.back().append(d, n); };
  h.end = [&](std::size_t) { ++p.ends; };
  dd::MultipartReader reader(boundary, h);
  if (chunk == 0) chunk = body.size() + 1;
  for (std::size_t i = 0; i < body.size(); i += chunk) reader.feed(body.data() + i, std::min(chunk, body.size() - i));
  reader.finish();
  EXPECT_EQ(reader.parts(), p.bodies.size());
  return p;
}

// Contents chosen to trip a careless reader: CR/LF at the edges, text close to the delimiter,
// binary zeros, an empty part.
std::vector<std::string> tricky_contents() {
  return {std::string("DICM\0\0\x01\x02", 8) + "\r\n--b0undary-not-quite\r\n" + std::string(300, 'x'),
          "ends in CR\r",
          "",
          "\n--boundary-1234X is not the boundary because of the X\n",
          std::string(5000, '\0') + "--boundary-123"};
}

std::string body_of(const std::vector<std::string>& contents, const std::string& eol, bool preamble) {
  std::string b = preamble ? "This is a preamble" + eol + "with two lines" + eol : "";
  for (std::size_t i = 0; i < contents.size(); ++i) {
    b += (i ? eol : "") + "--boundary-1234" + (i == 1 ? " \t" : "") + eol;  // transport padding once
    b += "Content-Type: application/dicom" + eol + "Content-Location: /x/" + std::to_string(i) + eol + eol;
    b += contents[i];
  }
  b += eol + "--boundary-1234--" + eol + "an epilogue";
  return b;
}

TEST(Multipart, EveryPartComesBackExactlyWhateverThePieces) {
  const auto contents = tricky_contents();
  for (const std::string eol : {"\r\n", "\n"}) {
    const std::string body = body_of(contents, eol, true);
    for (std::size_t chunk : {0, 1, 2, 3, 7, 16, 17, 64, 4096}) {
      const Parsed p = parse(body, "boundary-1234", chunk);
      ASSERT_EQ(p.bodies.size(), contents.size()) << "eol " << eol.size() << " chunk " << chunk;
      EXPECT_EQ(p.ends, contents.size());
      for (std::size_t i = 0; i < contents.size(); ++i) {
        EXPECT_EQ(p.bodies[i], contents[i]) << "part " << i << " eol " << eol.size() << " chunk " << chunk;
        EXPECT_EQ(p.headers[i].at("content-type"), "application/dicom");
        EXPECT_EQ(p.headers[i].at("content-location"), "/x/" + std::to_string(i));
      }
    }
  }
}

TEST(Multipart, ABodyThatStartsWithTheBoundaryOrHasNoPartsIsRead) {
  EXPECT_EQ(parse(body_of({"a"}, "\r\n", false), "boundary-1234").bodies, std::vector<std::string>{"a"});
  EXPECT_TRUE(parse("--boundary-1234--\r\n", "boundary-1234").bodies.empty());
}

TEST(Multipart, TruncatedOrForeignBodiesAreRefusedAtEveryCut) {
  const std::string body = body_of(tricky_contents(), "\r\n", true);
  const std::size_t close = body.rfind("--boundary-1234--");
  // Every cut before the closing boundary's last "--" is incomplete.
  for (std::size_t cut = 0; cut < close + std::string("--boundary-1234-").size(); cut += (cut < 200 ? 1 : 97)) {
    try {
      parse(body.substr(0, cut), "boundary-1234", 13);
      ADD_FAILURE() << "a body cut at " << cut << " of " << body.size() << " was accepted";
    } catch (const sagitta::dicom::DicomError& e) {
      const std::string m = e.what();
      EXPECT_TRUE(m.find("truncated") != std::string::npos || m.find("no multipart boundary") != std::string::npos) << m;
    }
  }
  EXPECT_THROW(parse("{\"not\": \"multipart\"}", "boundary-1234"), sagitta::dicom::DicomError);
  EXPECT_THROW(parse(body, "another-boundary"), sagitta::dicom::DicomError);
  EXPECT_THROW(parse("--boundary-1234\r\n" + std::string(70000, 'h'), "boundary-1234"), sagitta::dicom::DicomError);
}

TEST(Multipart, WrittenBodiesAreReadBackAndHaveTheAnnouncedSize) {
  const fs::path dir = st::scratch_dir();
  std::vector<fs::path> files;
  const auto contents = tricky_contents();
  for (std::size_t i = 0; i < contents.size(); ++i) {
    files.push_back(dir / ("f" + std::to_string(i)));
    std::ofstream(files.back(), std::ios::binary) << contents[i];
  }
  const std::string boundary = dd::random_boundary();
  EXPECT_NE(boundary, dd::random_boundary());
  dd::MultipartFileBody body(files, boundary, "application/dicom");
  std::size_t done = 0;
  body.on_file_done = [&](std::size_t n) { done = n; };
  for (int pass = 0; pass < 2; ++pass) {  // the second pass after a rewind (a redirected POST)
    std::string bytes;
    char buffer[333];
    for (std::size_t n; (n = body.read(buffer, sizeof buffer)) > 0;) bytes.append(buffer, n);
    EXPECT_EQ(bytes.size(), body.size());
    EXPECT_EQ(done, files.size());
    const Parsed p = parse(bytes, boundary, 100);
    EXPECT_EQ(p.bodies, contents);
    body.rewind();
  }
}

TEST(Multipart, HeaderParametersAndUrls) {
  const std::string ct = "Multipart/Related; type=\"application/dicom; transfer-syntax=*\"; BOUNDARY=\"a;b=c\"; start=x";
  EXPECT_EQ(dd::media_type(ct), "multipart/related");
  EXPECT_EQ(dd::header_parameter(ct, "boundary"), "a;b=c");
  EXPECT_EQ(dd::header_parameter(ct, "type"), "application/dicom; transfer-syntax=*");
  EXPECT_EQ(dd::header_parameter(ct, "start"), "x");
  EXPECT_EQ(dd::header_parameter("multipart/related;boundary=plain", "boundary"), "plain");
  EXPECT_EQ(dd::header_parameter("application/dicom+json", "boundary"), "");
  EXPECT_EQ(dd::redacted_url("https://user:secret@pacs.example:8443/dicom-web?x=a@b"), "https://pacs.example:8443/dicom-web?x=a@b");
  EXPECT_EQ(dd::redacted_url("http://127.0.0.1/a@b"), "http://127.0.0.1/a@b");
  EXPECT_EQ(dd::url_escape("1.2.3 a/b&c=d"), "1.2.3%20a%2Fb%26c%3Dd");
}

}  // namespace
