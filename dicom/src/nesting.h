#pragma once
// A guard in front of DCMTK's parser. DCMTK reads nested sequences recursively (about 1.6 KiB of
// stack per level, measured with Debian's 3.6.7: 5,000 levels overflow an 8 MiB stack, a file of
// 100 KB can hold that many), so a hostile file could crash any process that parses it. Before
// DCMTK sees a file, this walks its byte stream without recursion (one explicit stack of open
// sequences and items, values skipped unread) and measures how deep sequences nest. Files deeper
// than kMaxSequenceDepth are refused; real data nests far less (enhanced multi-frame objects 3-4
// levels, structured reports a few dozen at most).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace sagitta::dicom::detail {

inline constexpr int kMaxSequenceDepth = 100;

// The deepest sequence nesting of a DICOM stream (Part 10 file with or without preamble and meta
// header, or a bare dataset; implicit/explicit VR, little/big endian, deflated). Values that
// begin like an item (e.g. VR UN holding an undefined-VR sequence, private blobs) are walked too,
// since DCMTK may read them as sequences. Stops early once `limit` is exceeded. Never throws;
// structure it cannot follow ends the walk (DCMTK then refuses the file itself).
int sequence_depth(const std::uint8_t* data, std::size_t size, int limit = kMaxSequenceDepth);
int sequence_depth(const std::filesystem::path& path, int limit = kMaxSequenceDepth);

// Empty when the file may be given to DCMTK; else why not, in one sentence: sequences nested
// deeper than kMaxSequenceDepth, or a value (other than top-level pixel data, which the scan
// checks itself) longer than the rest of the file, for which DCMTK would allocate the claimed
// length, up to 4 GiB, before failing.
std::string nesting_problem(const std::filesystem::path& path);

}  // namespace sagitta::dicom::detail
