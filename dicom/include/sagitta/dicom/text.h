#pragma once
// DICOM text to UTF-8. Every string Sagitta shows or writes (JSON, tables, reports, errors,
// derived objects) goes through here, so outputs are always valid UTF-8 whatever the source's
// Specific Character Set (0008,0005) says.
#include <string>
#include <string_view>

namespace sagitta::dicom {

// Converts one text value, as stored in a file, to UTF-8 according to the dataset's
// SpecificCharacterSet value (all its backslash-separated terms). Supported: the default
// repertoire, ISO_IR 100/101/109/110/126/127/138/144/148/166/203, ISO_IR 13 (JIS X 0201),
// ISO_IR 192 (UTF-8), GB18030, GBK, and their ISO 2022 forms with escape sequences, including
// the multi-byte sets ISO 2022 IR 87/159 (Japanese), IR 149 (Korean) and IR 58 (Chinese).
// Never throws: a byte that does not decode, or any byte of an unknown set, becomes U+FFFD.
// Without a character set, bytes above 0x7F are kept when they are valid UTF-8 (a common
// undeclared encoding) and replaced otherwise.
std::string to_utf8(std::string_view bytes, std::string_view specific_character_set);

// `text` with every invalid UTF-8 sequence replaced by U+FFFD (valid input is returned as is).
std::string valid_utf8(std::string_view text);

// True when SpecificCharacterSet names only sets to_utf8 knows.
bool known_character_set(std::string_view specific_character_set);

}  // namespace sagitta::dicom
