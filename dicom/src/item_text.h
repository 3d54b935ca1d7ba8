#pragma once
// Reading values out of a DCMTK item as UTF-8: the one place that knows which Specific Character
// Set (0008,0005) applies to an element. PS3.5 6.1.2.5.4: an item of a sequence may declare its
// own character set, which then applies to that item and the items nested in it; otherwise the
// enclosing item's (and at the top, the dataset's) applies.
#include <dcmtk/dcmdata/dcitem.h>

#include <string>

namespace sagitta::dicom::detail {

// The value of `tag` in `item` (every value, backslash-separated) as stored, trailing padding
// (spaces, NULs) removed. Raw bytes: use item_text() or item_code() for anything shown or written.
std::string raw_value(DcmItem& item, const DcmTagKey& tag);

// The Specific Character Set in force for elements of `item`: its own, else the nearest enclosing
// item's, else "" (the default repertoire).
std::string charset_in_scope(DcmItem& item);

// Text (PN, LO, SH, ST, LT, UT, UC) converted to UTF-8 with the character set in force.
std::string item_text(DcmItem& item, const DcmTagKey& tag);

// Code strings, UIDs, dates, numbers: ASCII by definition; any other byte is replaced so that no
// stray byte reaches an output.
std::string item_code(DcmItem& item, const DcmTagKey& tag);

}  // namespace sagitta::dicom::detail
