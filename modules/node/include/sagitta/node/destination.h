#pragma once
// Where `sagitta listen` sends its results. One small interface so that a destination kind is one
// class: C-STORE (over sagitta::dicom::pacs_store) and STOW-RS (over sagitta::dicom::stow_store).
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sagitta/node/config.h"

namespace sagitta::node {

class ResultDestination {
public:
  virtual ~ResultDestination() = default;
  // For logs, e.g. "ORTHANC@127.0.0.1:4242" (no credentials).
  virtual std::string name() const = 0;
  // Sends `files` in order and calls `confirmed(i)` as soon as the peer has confirmed file i
  // (returning false stops the sending). Throws sagitta::Error when the peer cannot be reached
  // or refuses; the files confirmed before stay confirmed.
  virtual void send(const std::vector<std::filesystem::path>& files, const std::function<bool(std::size_t)>& confirmed) = 0;
};

// The destination the configuration describes; throws sagitta::Error for an unknown type or a
// wrong setting. To add a kind: a class above and one branch here.
std::unique_ptr<ResultDestination> make_destination(const Destination& config);

}  // namespace sagitta::node
