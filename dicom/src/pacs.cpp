// The DICOM network client: DCMTK's DcmSCU for echo/find/get/move/store, and a DcmStorageSCP in
// a thread for the association a C-MOVE opens back to us.
#include "sagitta/dicom/pacs.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dstorscp.h>
#include <dcmtk/dcmnet/scu.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "nesting.h"
#include "transfer_syntaxes.h"
#include "transfer_files.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/text.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;

namespace {
using detail::decodable_syntaxes;
using detail::uncompressed_syntaxes;

// The storage SOP classes proposed for C-GET (a presentation context each, at most 128 in an
// association): DCMTK's list of commonly used ones plus the derived objects Sagitta writes.
std::vector<std::string> retrievable_sop_classes() {
  std::set<std::string> seen;
  std::vector<std::string> out;
  auto add = [&](const char* uid) {
    if (uid && seen.insert(uid).second) out.push_back(uid);
  };
  for (const char* uid : {UID_CTImageStorage, UID_MRImageStorage, UID_EnhancedCTImageStorage, UID_EnhancedMRImageStorage,
                          UID_SegmentationStorage, UID_ParametricMapStorage, UID_SecondaryCaptureImageStorage,
                          UID_MultiframeTrueColorSecondaryCaptureImageStorage, UID_LegacyConvertedEnhancedCTImageStorage,
                          UID_LegacyConvertedEnhancedMRImageStorage, UID_PositronEmissionTomographyImageStorage,
                          UID_RTDoseStorage, UID_RTStructureSetStorage})
    add(uid);
  for (int i = 0; i < numberOfDcmShortSCUStorageSOPClassUIDs && out.size() < 120; ++i)
    add(dcmShortSCUStorageSOPClassUIDs[i]);
  return out;
}

std::string peer_name(const PacsPeer& p) { return fmt::format("{}@{}:{}", p.called_ae, p.host, p.port); }

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

void configure(DcmSCU& scu, const PacsPeer& peer) {
  register_codecs();  // also silences DCMTK's own logging: errors reach the user once, as DicomError
  if (peer.port <= 0 || peer.port > 65535) throw DicomError(fmt::format("PACS port {} is not a TCP port", peer.port));
  if (peer.called_ae.empty() || peer.called_ae.size() > 16 || peer.calling_ae.empty() || peer.calling_ae.size() > 16)
    throw DicomError("AE titles must have 1 to 16 characters");
  scu.setAETitle(peer.calling_ae.c_str());
  scu.setPeerAETitle(peer.called_ae.c_str());
  scu.setPeerHostName(peer.host.c_str());
  scu.setPeerPort(static_cast<Uint16>(peer.port));
  scu.setConnectionTimeout(peer.connect_timeout_s);
  scu.setACSETimeout(static_cast<Uint32>(peer.acse_timeout_s));
  // Non-blocking DIMSE: a peer that stops answering fails after the timeout instead of hanging.
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setDIMSETimeout(static_cast<Uint32>(peer.dimse_timeout_s));
  scu.setVerbosePCMode(OFFalse);
}

void connect(DcmSCU& scu, const PacsPeer& peer, const std::string& what) {
  OFCondition c = scu.initNetwork();
  if (c.bad()) throw DicomError(fmt::format("{}: cannot initialise the network ({})", what, c.text()));
  c = scu.negotiateAssociation();
  if (c.bad())
    throw DicomError(fmt::format("{}: PACS {} refused or did not answer the association ({})", what, peer_name(peer),
                                 c.text()));
}

// Releases on scope exit; aborts if the work failed.
struct Association {
  DcmSCU& scu;
  bool ok = false;
  ~Association() {
    if (!scu.isConnected()) return;
    if (ok)
      scu.releaseAssociation();
    else
      scu.abortAssociation();
  }
};

const char* level_name(QueryLevel level) {
  switch (level) {
    case QueryLevel::Patient: return "PATIENT";
    case QueryLevel::Study: return "STUDY";
    case QueryLevel::Series: return "SERIES";
    case QueryLevel::Image: return "IMAGE";
  }
  return "STUDY";
}

DcmDataset query_dataset(QueryLevel level, const QueryKeys& keys, bool with_defaults) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_QueryRetrieveLevel, level_name(level));
  std::map<std::string, std::string> all;
  if (with_defaults)
    for (const auto& k : default_query_keys(level)) all[k] = "";
  for (const auto& [k, v] : keys) all[k] = v;
  for (const auto& [keyword, value] : all) {
    DcmTag tag;
    if (DcmTag::findTagFromName(keyword.c_str(), tag).bad())
      throw DicomError(fmt::format("query key '{}' is not a DICOM keyword (e.g. PatientID, StudyInstanceUID)", keyword));
    if (ds.putAndInsertString(tag, value.c_str()).bad())
      throw DicomError(fmt::format("query key {}: '{}' is not a valid value", keyword, value));
  }
  return ds;
}

std::string status_text(Uint16 status) {
  switch (status) {
    case 0xA701: case 0xA702: return "out of resources";
    case 0xA801: return "move destination unknown: register our AE title, host and port in the PACS";
    case 0xA900: return "identifier does not match SOP class";
    case 0xC000: return "unable to process";
    case 0xFE00: return "cancelled";
    case 0xB000: return "some sub-operations failed";
    case 0x0122: return "SOP class not supported";
    case 0x0124: return "not authorised";
    default: return fmt::format("status 0x{:04X}", status);
  }
}

// C-GET client that reports each stored object and stops when asked.
class GetSCU : public DcmSCU {
public:
  PacsProgress progress;
  std::size_t received = 0, expected = 0;
  bool cancelled = false;

protected:
  OFCondition handleSTORERequestFile(T_ASC_PresentationContextID* presID, const OFString& filename,
                                     T_DIMSE_C_StoreRQ* request) override {
    OFCondition c = DcmSCU::handleSTORERequestFile(presID, filename, request);
    ++received;
    if (progress && !progress(received, expected)) {
      cancelled = true;
      return EC_IllegalCall;
    }
    return c;
  }
};

// Storage SCP for C-MOVE: stores what arrives bit for bit and stops when told.
class MoveReceiver : public DcmStorageSCP {
public:
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> received{0};

protected:
  OFBool stopAfterConnectionTimeout() override { return stop.load(); }
  OFBool stopAfterCurrentAssociation() override { return stop.load(); }
  void notifyInstanceStored(const OFString&, const OFString&, const OFString&, DcmDataset*) const override {
    const_cast<MoveReceiver*>(this)->received++;
  }
};

// Deletes the responses DcmSCU hands over, however the caller leaves.
struct OwnedResponses {
  OFList<RetrieveResponse*> list;
  OwnedResponses() = default;
  OwnedResponses(const OwnedResponses&) = delete;
  OwnedResponses& operator=(const OwnedResponses&) = delete;
  ~OwnedResponses() {
    for (auto* r : list) delete r;
  }
};

// Checks how a C-GET or C-MOVE (`request`, sent with outcome `sent`) ended and counts its
// sub-operations into `result`; throws unless every object arrived.
void check_retrieve(const OFCondition& sent, const OFList<RetrieveResponse*>& responses, RetrieveResult& result,
                    const PacsPeer& peer, const std::string& what, const char* request) {
  if (sent.bad())
    throw DicomError(fmt::format("{}: {} from PACS {} failed ({})", what, request, peer_name(peer), sent.text()));
  if (responses.empty()) throw DicomError(fmt::format("{}: PACS {} sent no response", what, peer_name(peer)));
  const RetrieveResponse* last = responses.back();
  result.completed = last->m_numberOfCompletedSubops;
  result.failed = last->m_numberOfFailedSubops;
  result.warnings = last->m_numberOfWarningSubops;
  if (last->m_status != 0 && last->m_status != 0xB000)
    throw DicomError(fmt::format("{}: PACS {} answered: {}", what, peer_name(peer), status_text(last->m_status)));
  if (result.failed > 0 || last->m_status == 0xB000)
    throw DicomError(fmt::format("{}: {} of {} objects failed to arrive from PACS {}", what, result.failed,
                                 result.failed + result.completed, peer_name(peer)));
}

}  // namespace

std::vector<std::string> default_query_keys(QueryLevel level) {
  switch (level) {
    case QueryLevel::Patient: return {"PatientName", "PatientID", "PatientBirthDate", "PatientSex"};
    case QueryLevel::Study:
      return {"StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "StudyTime", "StudyDescription",
              "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"};
    case QueryLevel::Series:
      return {"StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
              "NumberOfSeriesRelatedInstances"};
    case QueryLevel::Image:
      return {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "InstanceNumber"};
  }
  return {};
}

QueryLevel query_level_from_string(const std::string& level) {
  const std::string l = upper(level);
  if (l == "PATIENT") return QueryLevel::Patient;
  if (l == "STUDY") return QueryLevel::Study;
  if (l == "SERIES") return QueryLevel::Series;
  if (l == "IMAGE" || l == "INSTANCE") return QueryLevel::Image;
  throw DicomError(fmt::format("query level '{}': use patient, study, series or image", level));
}

void pacs_echo(const PacsPeer& peer) {
  DcmSCU scu;
  configure(scu, peer);
  OFList<OFString> ts = uncompressed_syntaxes();
  scu.addPresentationContext(UID_VerificationSOPClass, ts);
  connect(scu, peer, "echo");
  Association a{scu};
  const OFCondition c = scu.sendECHORequest(0);
  if (c.bad()) throw DicomError(fmt::format("echo: PACS {} did not answer the C-ECHO ({})", peer_name(peer), c.text()));
  a.ok = true;
}

std::vector<QueryMatch> pacs_find(const PacsPeer& peer, QueryLevel level, const QueryKeys& keys) {
  const char* model = level == QueryLevel::Patient ? UID_FINDPatientRootQueryRetrieveInformationModel
                                                   : UID_FINDStudyRootQueryRetrieveInformationModel;
  DcmDataset query = query_dataset(level, keys, true);
  DcmSCU scu;
  configure(scu, peer);
  scu.addPresentationContext(model, uncompressed_syntaxes());
  connect(scu, peer, "find");
  Association a{scu};
  const T_ASC_PresentationContextID pc = scu.findPresentationContextID(model, "");
  if (pc == 0) throw DicomError(fmt::format("find: PACS {} does not support C-FIND at this level", peer_name(peer)));
  OFList<QRResponse*> responses;
  const OFCondition c = scu.sendFINDRequest(pc, &query, &responses);
  std::vector<QueryMatch> matches;
  Uint16 final_status = 0;
  for (QRResponse* r : responses) {
    final_status = r->m_status;
    if (r->m_dataset && (r->m_status == 0xFF00 || r->m_status == 0xFF01)) {
      QueryMatch m;
      OFString charset;
      r->m_dataset->findAndGetOFStringArray(DCM_SpecificCharacterSet, charset);
      for (unsigned long i = 0; i < r->m_dataset->card(); ++i) {
        DcmElement* e = r->m_dataset->getElement(i);
        if (e->getTag() == DCM_QueryRetrieveLevel || e->getTag() == DCM_SpecificCharacterSet) continue;
        OFString value;
        e->getOFStringArray(value);
        DcmTag tag(e->getTag());
        m[tag.getTagName()] = to_utf8(std::string_view(value.c_str(), value.length()), charset.c_str());
      }
      matches.push_back(std::move(m));
    }
    delete r;
  }
  if (c.bad()) throw DicomError(fmt::format("find: C-FIND to PACS {} failed ({})", peer_name(peer), c.text()));
  if (final_status != 0)
    throw DicomError(fmt::format("find: PACS {} answered: {}", peer_name(peer), status_text(final_status)));
  a.ok = true;
  return matches;
}

RetrieveResult pacs_get(const PacsPeer& peer, QueryLevel level, const QueryKeys& keys, const fs::path& out_dir,
                        const PacsProgress& progress) {
  if (level == QueryLevel::Patient) throw DicomError("get: retrieve a study, series or image, not a whole patient");
  DcmDataset query = query_dataset(level, keys, false);
  detail::RetrieveStaging staging(out_dir);
  GetSCU scu;
  configure(scu, peer);
  scu.progress = progress;
  scu.setStorageMode(DCMSCU_STORAGE_BIT_PRESERVING);  // as sent: no re-encoding, no decoding
  scu.setStorageDir(staging.dir.c_str());
  const char* model = UID_GETStudyRootQueryRetrieveInformationModel;
  scu.addPresentationContext(model, uncompressed_syntaxes());
  // For C-GET the PACS is the acceptor and picks one syntax per presentation context; offered
  // several in one, Orthanc picks uncompressed and then fails to transcode JPEG 2000. So the
  // image classes get one context per compressed syntax (the PACS sends on the one matching how
  // it stores the object) plus one uncompressed; the other classes one context with all syntaxes.
  // At most 128 contexts fit in an association.
  const OFList<OFString> syntaxes = decodable_syntaxes();
  std::size_t contexts = 1;
  const std::set<std::string> image_classes{UID_CTImageStorage,
                                            UID_MRImageStorage,
                                            UID_EnhancedCTImageStorage,
                                            UID_EnhancedMRImageStorage,
                                            UID_PositronEmissionTomographyImageStorage,
                                            UID_LegacyConvertedEnhancedCTImageStorage,
                                            UID_SecondaryCaptureImageStorage,
                                            UID_DigitalXRayImageStorageForPresentation};
  for (const auto& sop : retrievable_sop_classes()) {
    if (image_classes.count(sop)) {
      for (const auto& ts : syntaxes) {
        if (ts == UID_LittleEndianExplicitTransferSyntax || ts == UID_LittleEndianImplicitTransferSyntax ||
            ts == UID_BigEndianExplicitTransferSyntax)
          continue;
        OFList<OFString> one;
        one.push_back(ts);
        scu.addPresentationContext(sop.c_str(), one, ASC_SC_ROLE_SCP);
        ++contexts;
      }
      scu.addPresentationContext(sop.c_str(), uncompressed_syntaxes(), ASC_SC_ROLE_SCP);
      ++contexts;
    }
  }
  for (const auto& sop : retrievable_sop_classes()) {
    if (image_classes.count(sop) || contexts >= 128) continue;
    scu.addPresentationContext(sop.c_str(), syntaxes, ASC_SC_ROLE_SCP);
    ++contexts;
  }
  connect(scu, peer, "get");
  Association a{scu};
  const T_ASC_PresentationContextID pc = scu.findPresentationContextID(model, "");
  if (pc == 0) throw DicomError(fmt::format("get: PACS {} does not support C-GET (try move)", peer_name(peer)));
  OwnedResponses responses;
  const OFCondition c = scu.sendCGETRequest(pc, &query, &responses.list);
  RetrieveResult result;
  if (scu.cancelled) throw DicomError("get: cancelled");
  check_retrieve(c, responses.list, result, peer, "get", "C-GET");
  a.ok = true;
  if (result.completed == 0) throw DicomError(fmt::format("get: PACS {} has nothing that matches", peer_name(peer)));
  detail::publish_retrieved(staging.dir, out_dir, result);
  return result;
}

RetrieveResult pacs_move(const PacsPeer& peer, QueryLevel level, const QueryKeys& keys, const fs::path& out_dir,
                         int listen_port, const PacsProgress& progress) {
  if (level == QueryLevel::Patient) throw DicomError("move: retrieve a study, series or image, not a whole patient");
  if (listen_port <= 0 || listen_port > 65535) throw DicomError(fmt::format("move: listen port {} is not a TCP port", listen_port));
  DcmDataset query = query_dataset(level, keys, false);
  detail::RetrieveStaging staging(out_dir);

  MoveReceiver receiver;
  receiver.setAETitle(peer.calling_ae.c_str());
  receiver.setPort(static_cast<Uint16>(listen_port));
  receiver.setOutputDirectory(staging.dir.c_str());
  receiver.setDatasetStorageMode(DcmStorageSCP::DGM_StoreBitPreserving);
  receiver.setConnectionBlockingMode(DUL_NOBLOCK);
  receiver.setConnectionTimeout(1);  // how often the listener checks whether to stop
  receiver.setACSETimeout(static_cast<Uint32>(peer.acse_timeout_s));
  receiver.setDIMSETimeout(static_cast<Uint32>(peer.dimse_timeout_s));
  receiver.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  const OFList<OFString> syntaxes = decodable_syntaxes();
  for (int i = 0; i < numberOfDcmAllStorageSOPClassUIDs; ++i)
    receiver.addPresentationContext(dcmAllStorageSOPClassUIDs[i], syntaxes);
  receiver.addPresentationContext(UID_VerificationSOPClass, uncompressed_syntaxes());
  OFCondition c = receiver.openListenPort();
  if (c.bad())
    throw DicomError(fmt::format("move: cannot listen on port {} for the PACS' connection ({})", listen_port, c.text()));
  std::thread listener([&] { receiver.acceptAssociations(); });
  auto stop_listener = [&] {
    receiver.stop = true;
    if (listener.joinable()) listener.join();
  };

  RetrieveResult result;
  try {
    DcmSCU scu;
    configure(scu, peer);
    const char* model = UID_MOVEStudyRootQueryRetrieveInformationModel;
    scu.addPresentationContext(model, uncompressed_syntaxes());
    connect(scu, peer, "move");
    Association a{scu};
    const T_ASC_PresentationContextID pc = scu.findPresentationContextID(model, "");
    if (pc == 0) throw DicomError(fmt::format("move: PACS {} does not support C-MOVE", peer_name(peer)));
    OwnedResponses responses;
    c = scu.sendMOVERequest(pc, peer.calling_ae.c_str(), &query, &responses.list);
    check_retrieve(c, responses.list, result, peer, "move", "C-MOVE");
    a.ok = true;
    if (progress && !progress(receiver.received.load(), result.completed)) throw DicomError("move: cancelled");
  } catch (...) {
    stop_listener();
    throw;
  }
  stop_listener();
  if (result.completed == 0) throw DicomError(fmt::format("move: PACS {} has nothing that matches", peer_name(peer)));
  if (receiver.received.load() != result.completed)
    throw DicomError(fmt::format("move: PACS {} reported {} objects sent but {} arrived", peer_name(peer), result.completed,
                                 receiver.received.load()));
  detail::publish_retrieved(staging.dir, out_dir, result);
  return result;
}

namespace {

// One context per (SOP class, syntax) as stored, plus an uncompressed one per SOP class.
struct StoreContexts {
  std::set<std::pair<std::string, std::string>> as_stored;
  std::set<std::string> classes;
};

StoreContexts store_contexts(const std::vector<detail::StoreItem>& items) {
  StoreContexts contexts;
  for (const auto& i : items) {
    contexts.as_stored.insert({i.sop_class, i.syntax});
    contexts.classes.insert(i.sop_class);
  }
  if (contexts.as_stored.size() + contexts.classes.size() > 128)
    throw DicomError(fmt::format("store: {} SOP class/transfer syntax combinations need more than the 128 presentation "
                                 "contexts of one association; store fewer kinds of objects at a time",
                                 contexts.as_stored.size()));
  return contexts;
}

void propose(DcmSCU& scu, const StoreContexts& contexts) {
  for (const auto& [cls, ts] : contexts.as_stored) {
    OFList<OFString> one;
    one.push_back(ts.c_str());
    scu.addPresentationContext(cls.c_str(), one);
  }
  for (const auto& cls : contexts.classes) scu.addPresentationContext(cls.c_str(), uncompressed_syntaxes());
}

// The accepted context of every object, checked before any is sent: as stored, else
// uncompressed (with a warning in `result`).
std::vector<T_ASC_PresentationContextID> accepted_contexts(DcmSCU& scu, const std::vector<detail::StoreItem>& items,
                                                           const PacsPeer& peer, StoreResult& result) {
  std::vector<T_ASC_PresentationContextID> pcs;
  for (const auto& i : items) {
    T_ASC_PresentationContextID pc = scu.findPresentationContextID(i.sop_class.c_str(), i.syntax.c_str());
    if (pc == 0) {
      pc = scu.findPresentationContextID(i.sop_class.c_str(), UID_LittleEndianExplicitTransferSyntax);
      if (pc == 0) pc = scu.findPresentationContextID(i.sop_class.c_str(), UID_LittleEndianImplicitTransferSyntax);
      if (pc != 0)
        result.warnings.push_back(fmt::format("{}: the PACS refused transfer syntax {}; sent decompressed",
                                              i.path.string(), i.syntax));
    }
    if (pc == 0)
      throw DicomError(fmt::format("store: PACS {} accepts no transfer syntax for {} (SOP class {}); nothing was sent",
                                  peer_name(peer), i.path.string(), i.sop_class));
    pcs.push_back(pc);
  }
  return pcs;
}

void send_all(DcmSCU& scu, const std::vector<detail::StoreItem>& items, const std::vector<T_ASC_PresentationContextID>& pcs,
              const PacsPeer& peer, const PacsProgress& progress, StoreResult& result) {
  for (std::size_t k = 0; k < items.size(); ++k) {
    Uint16 status = 0;
    const OFCondition c = scu.sendSTORERequest(pcs[k], OFFilename(items[k].path.c_str()), nullptr, status);
    if (c.bad())
      throw DicomError(fmt::format("store: sending {} to PACS {} failed after {} of {} objects ({})", items[k].path.string(),
                                   peer_name(peer), result.sent, items.size(), c.text()));
    if (status != 0 && (status & 0xF000) != 0xB000)
      throw DicomError(fmt::format("store: PACS {} refused {} ({}) after {} of {} objects", peer_name(peer),
                                   items[k].path.string(), status_text(status), result.sent, items.size()));
    ++result.sent;
    result.sop_instance_uids.push_back(items[k].sop_instance);
    if (progress && !progress(result.sent, items.size())) throw DicomError("store: cancelled");
  }
}

}  // namespace

StoreResult pacs_store(const PacsPeer& peer, const std::vector<fs::path>& inputs, const PacsProgress& progress) {
  register_codecs();  // a peer refusing a compressed syntax gets the object decompressed
  const std::vector<detail::StoreItem> items = detail::read_store_items(inputs);
  const StoreContexts contexts = store_contexts(items);
  DcmSCU scu;
  configure(scu, peer);
  propose(scu, contexts);
  scu.setDatasetConversionMode(OFTrue);
  connect(scu, peer, "store");
  Association a{scu};

  StoreResult result;
  const std::vector<T_ASC_PresentationContextID> pcs = accepted_contexts(scu, items, peer, result);
  send_all(scu, items, pcs, peer, progress, result);
  a.ok = true;
  return result;
}

}  // namespace sagitta::dicom
