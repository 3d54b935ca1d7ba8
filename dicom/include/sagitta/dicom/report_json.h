#pragma once
// JSON views of scan results and loaded series, shared by `sagitta info --json` and reports.
#include <nlohmann/json.hpp>

#include "sagitta/dicom/load.h"
#include "sagitta/dicom/scan.h"

namespace sagitta::dicom {

nlohmann::json to_json(const Decision& decision);
nlohmann::json to_json(const Stack& stack);
nlohmann::json to_json(const ScanResult& scan);

}  // namespace sagitta::dicom
