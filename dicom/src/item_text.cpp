// Values of a DCMTK item as UTF-8 (the declarations and their contract: item_text.h).
#include "item_text.h"

#include <dcmtk/dcmdata/dcdeftag.h>

#include "sagitta/dicom/text.h"

namespace sagitta::dicom::detail {

std::string raw_value(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value, OFFalse).bad()) return {};
  std::string s(value.c_str(), value.length());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::string charset_in_scope(DcmItem& item) {
  // Items nest as item -> sequence -> item; getParentItem() skips the sequence. The depth is
  // bounded by the parser's nesting limit (nesting.h).
  for (DcmItem* scope = &item; scope != nullptr; scope = scope->getParentItem())
    if (scope->tagExists(DCM_SpecificCharacterSet, OFFalse)) return raw_value(*scope, DCM_SpecificCharacterSet);
  return {};
}

std::string item_text(DcmItem& item, const DcmTagKey& tag) { return to_utf8(raw_value(item, tag), charset_in_scope(item)); }

std::string item_code(DcmItem& item, const DcmTagKey& tag) { return valid_utf8(raw_value(item, tag)); }

}  // namespace sagitta::dicom::detail
