#pragma once
// A DICOM storage node (C-STORE SCP, DCMTK dcmnet) for `sagitta listen`: accepts every storage
// SOP class DCMTK knows with every transfer syntax Sagitta decodes (compressed objects are kept
// bit for bit as received) and C-ECHO. Each instance is received into a hidden temporary file
// inside the node's folder and handed to the caller, who moves it into place; the sender is told
// "success" only after the caller returned, so an acknowledged instance is on disk.
//
// Associations are served one after the other in the thread that calls serve().
#include <filesystem>
#include <functional>
#include <string>

namespace sagitta::dicom {

struct StoreScpOptions {
  std::string ae_title = "SAGITTA";  // the called AE title we answer to (others are refused)
  int port = 11112;
  std::filesystem::path folder;      // temporary files go to <folder>/.receiving/
  int acse_timeout_s = 30;
  int dimse_timeout_s = 60;
};

struct ReceivedInstance {
  std::string study_uid, series_uid, sop_instance_uid, sop_class_uid, transfer_syntax;
  std::string calling_ae;  // the sender's AE title
  std::filesystem::path file;  // the temporary file, as received (bit preserving, with a meta header)
};

// Receives the instance; must move `file` away (or leave it to be removed). Throwing refuses the
// instance (the sender gets a failure status) and the temporary is removed.
using InstanceHandler = std::function<void(const ReceivedInstance&)>;

// True when `uid` is a DICOM UID (digits and dots, at most 64 characters, no empty component):
// safe as a file or folder name.
bool is_valid_uid(const std::string& uid);

class StoreScp {
public:
  explicit StoreScp(StoreScpOptions options);
  ~StoreScp();
  StoreScp(const StoreScp&) = delete;
  StoreScp& operator=(const StoreScp&) = delete;

  // Opens the listening port; throws DicomError when it cannot (in use, not allowed).
  void open();
  // Serves associations until `stop()` returns true (checked about once a second and between
  // associations). open() first.
  void serve(const std::function<bool()>& stop, const InstanceHandler& on_instance);

  struct Impl;

private:
  StoreScpOptions options_;
  Impl* impl_ = nullptr;
};

}  // namespace sagitta::dicom
