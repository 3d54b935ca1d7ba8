// The storage node: a DcmSCP whose C-STORE handler receives each dataset straight into a file
// (bit preserving), reads the UIDs it is filed under, and hands it over before answering.
#include "sagitta/dicom/store_scp.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scp.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>

#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "transfer_syntaxes.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;

bool is_valid_uid(const std::string& uid) {
  if (uid.empty() || uid.size() > 64 || uid.front() == '.' || uid.back() == '.') return false;
  for (std::size_t i = 0; i < uid.size(); ++i) {
    const char c = uid[i];
    if (c == '.' ? uid[i + 1] == '.' : (c < '0' || c > '9')) return false;
  }
  return true;
}

namespace {

constexpr Uint16 kStatusSuccess = 0x0000;
constexpr Uint16 kStatusOutOfResources = 0xA700;
constexpr Uint16 kStatusCannotUnderstand = 0xC000;

std::string text_of(DcmItem* item, const DcmTagKey& tag) {
  OFString v;
  if (item) item->findAndGetOFString(tag, v);
  return v.c_str();
}

}  // namespace

struct StoreScp::Impl : public DcmSCP {
  const StoreScpOptions* options = nullptr;
  const std::function<bool()>* stop = nullptr;
  const InstanceHandler* handler = nullptr;
  std::atomic<unsigned long> counter{0};

  OFBool stopAfterConnectionTimeout() override { return (*stop)(); }
  OFBool stopAfterCurrentAssociation() override { return (*stop)(); }
  OFBool checkCalledAETitleAccepted(const OFString& called) override { return called == options->ae_title.c_str(); }

  OFCondition handleIncomingCommand(T_DIMSE_Message* msg, const DcmPresentationContextInfo& info) override {
    if (msg->CommandField != DIMSE_C_STORE_RQ) return DcmSCP::handleIncomingCommand(msg, info);
    T_DIMSE_C_StoreRQ& request = msg->msg.CStoreRQ;
    const fs::path temp = options->folder / ".receiving" /
                          fmt::format("{}-{}.part", ::getpid(), counter.fetch_add(1));
    OFCondition c = receiveSTORERequest(request, info.presentationContextID, OFString(temp.c_str()));
    if (c.bad()) {
      std::error_code ec;
      fs::remove(temp, ec);
      return c;  // the association is gone or broken; DcmSCP ends it
    }
    const Uint16 status = take(temp, request);
    if (status != kStatusSuccess) {
      std::error_code ec;
      fs::remove(temp, ec);
    }
    return sendSTOREResponse(info.presentationContextID, request, status);
  }

  // Reads the UIDs of the received file and hands it over; the status for the sender.
  Uint16 take(const fs::path& temp, const T_DIMSE_C_StoreRQ& request) {
    DcmFileFormat file;
    // Big values stay on disk: only the header attributes are needed here.
    if (file.loadFile(temp.c_str(), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect).bad())
      return kStatusCannotUnderstand;
    ReceivedInstance r;
    r.file = temp;
    r.calling_ae = getPeerAETitle().c_str();
    r.study_uid = text_of(file.getDataset(), DCM_StudyInstanceUID);
    r.series_uid = text_of(file.getDataset(), DCM_SeriesInstanceUID);
    r.sop_instance_uid = request.AffectedSOPInstanceUID;
    r.sop_class_uid = request.AffectedSOPClassUID;
    r.transfer_syntax = text_of(file.getMetaInfo(), DCM_TransferSyntaxUID);
    const std::string in_dataset = text_of(file.getDataset(), DCM_SOPInstanceUID);
    // Filed by these UIDs (they become folder and file names): refuse anything else.
    if (!is_valid_uid(r.study_uid) || !is_valid_uid(r.series_uid) || !is_valid_uid(r.sop_instance_uid) ||
        (!in_dataset.empty() && in_dataset != r.sop_instance_uid))
      return kStatusCannotUnderstand;
    try {
      (*handler)(r);
    } catch (...) {
      return kStatusOutOfResources;
    }
    return kStatusSuccess;
  }
};

StoreScp::StoreScp(StoreScpOptions options) : options_(std::move(options)) {
  if (options_.port <= 0 || options_.port > 65535) throw DicomError(fmt::format("listen port {} is not a TCP port", options_.port));
  if (options_.ae_title.empty() || options_.ae_title.size() > 16)
    throw DicomError(fmt::format("AE title '{}' must have 1 to 16 characters", options_.ae_title));
  register_codecs();  // also silences DCMTK's own logging
  impl_ = new Impl;
  impl_->options = &options_;
  impl_->setAETitle(options_.ae_title.c_str());
  impl_->setPort(static_cast<Uint16>(options_.port));
  impl_->setRespondWithCalledAETitle(OFFalse);
  impl_->setConnectionBlockingMode(DUL_NOBLOCK);
  impl_->setConnectionTimeout(1);  // how often serve() looks at stop()
  impl_->setACSETimeout(static_cast<Uint32>(options_.acse_timeout_s));
  impl_->setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  impl_->setDIMSETimeout(static_cast<Uint32>(options_.dimse_timeout_s));
  impl_->setVerbosePCMode(OFFalse);
  const OFList<OFString> syntaxes = detail::decodable_syntaxes();
  for (int i = 0; i < numberOfDcmAllStorageSOPClassUIDs; ++i)
    impl_->addPresentationContext(dcmAllStorageSOPClassUIDs[i], syntaxes);
  impl_->addPresentationContext(UID_VerificationSOPClass, detail::uncompressed_syntaxes());
}

StoreScp::~StoreScp() { delete impl_; }

void StoreScp::open() {
  fs::create_directories(options_.folder / ".receiving");
  // Leftovers of an earlier run were never acknowledged: the sender sends them again.
  for (const auto& e : fs::directory_iterator(options_.folder / ".receiving")) fs::remove_all(e.path());
  const OFCondition c = impl_->openListenPort();
  if (c.bad())
    throw DicomError(fmt::format("cannot listen on port {} ({}); is another node running there?", options_.port, c.text()));
}

void StoreScp::serve(const std::function<bool()>& stop, const InstanceHandler& on_instance) {
  impl_->stop = &stop;
  impl_->handler = &on_instance;
  impl_->acceptAssociations();
}

}  // namespace sagitta::dicom
