#pragma once
// Reader for Siemens' private CSA header (tags (0029,xx10)/(0029,xx20), format "SV10"),
// which carries what standard tags lack for mosaics: the number of tiles and the true slice
// normal (whose sign gives the order of the tiles along the normal).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sagitta::dicom::detail {

// Element name -> its values as strings (trailing blanks removed). Empty on malformed input;
// never reads outside `data`.
std::map<std::string, std::vector<std::string>> parse_csa_header(const std::uint8_t* data,
                                                                 std::size_t size);

}  // namespace sagitta::dicom::detail
