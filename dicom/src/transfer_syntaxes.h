#pragma once
// The transfer syntaxes Sagitta's network code offers and accepts, in one place for the client
// (pacs.cpp) and the storage SCP (store_scp.cpp).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/ofstd/oflist.h>
#include <dcmtk/ofstd/ofstring.h>

namespace sagitta::dicom::detail {

// Everything Sagitta can decode, compressed first so a PACS sends stored objects unchanged
// (JPEG 2000 included: decoded by our OpenJPEG codec on load).
inline OFList<OFString> decodable_syntaxes() {
  OFList<OFString> ts;
  for (const char* uid :
       {UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEG2000TransferSyntax, UID_JPEGLSLosslessTransferSyntax,
        UID_JPEGLSLossyTransferSyntax, UID_JPEGProcess14SV1TransferSyntax, UID_JPEGProcess14TransferSyntax,
        UID_JPEGProcess1TransferSyntax, UID_JPEGProcess2_4TransferSyntax, UID_RLELosslessTransferSyntax,
        UID_DeflatedExplicitVRLittleEndianTransferSyntax, UID_LittleEndianExplicitTransferSyntax,
        UID_BigEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax})
    ts.push_back(uid);
  return ts;
}

inline OFList<OFString> uncompressed_syntaxes() {
  OFList<OFString> ts;
  ts.push_back(UID_LittleEndianExplicitTransferSyntax);
  ts.push_back(UID_LittleEndianImplicitTransferSyntax);
  return ts;
}

}  // namespace sagitta::dicom::detail
