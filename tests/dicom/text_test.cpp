// DICOM text to UTF-8: every character set of PS3.3 C.12.1.1.2, code extensions, and bytes that
// do not decode. Byte sequences are the standard's examples (PS3.5 Annex H, I, J) and glibc's
// tables; the expected strings are written in UTF-8 here.
#include <gtest/gtest.h>

#include <string>

#include "sagitta/dicom/text.h"

namespace {
using sagitta::dicom::known_character_set;
using sagitta::dicom::to_utf8;
using sagitta::dicom::valid_utf8;

const std::string kReplacement = "\xEF\xBF\xBD";

TEST(Text, AsciiPassesThroughEverySet) {
  for (const char* cs : {"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192", "GB18030", "\\ISO 2022 IR 87", "NONSENSE"})
    EXPECT_EQ(to_utf8("Doe^John", cs), "Doe^John") << cs;
}

TEST(Text, SingleByteSets) {
  EXPECT_EQ(to_utf8("IRM c\xE9r\xE9" "brale", "ISO_IR 100"), "IRM cérébrale");
  EXPECT_EQ(to_utf8("Buc^J\xE9r\xF4me", "ISO_IR 100"), "Buc^Jérôme");
  EXPECT_EQ(to_utf8("\xB6\xD6", "ISO_IR 144"), "Жж");                 // Cyrillic
  EXPECT_EQ(to_utf8("\xC1\xE1", "ISO_IR 126"), "Αα");                 // Greek
  EXPECT_EQ(to_utf8("\xA9\xB9", "ISO_IR 101"), "Šš");                 // Latin 2
  EXPECT_EQ(to_utf8("\xA4", "ISO_IR 203"), "€");                      // Latin 9
  EXPECT_EQ(to_utf8("\xE0", "ISO_IR 138"), "א");                      // Hebrew
  EXPECT_EQ(to_utf8("\xC7", "ISO_IR 127"), "ا");                      // Arabic
  EXPECT_EQ(to_utf8("\xA1", "ISO_IR 166"), "ก");                      // Thai
  EXPECT_EQ(to_utf8("\xDD", "ISO_IR 148"), "İ");                      // Latin 5
  // Writers spell the terms loosely.
  EXPECT_EQ(to_utf8("\xE9", "ISO-IR 100"), "é");
  EXPECT_EQ(to_utf8("\xE9", "iso_ir 100 "), "é");
}

TEST(Text, JapaneseWithCodeExtensions) {
  // PS3.5 H.3.1: JIS X 0208 in G0 by ESC $ B, back to ASCII by ESC ( B.
  const std::string bytes =
      "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
  EXPECT_EQ(to_utf8(bytes, "\\ISO 2022 IR 87"), "Yamada^Tarou=山田^太郎=やまだ^たろう");
  // JIS X 0201: katakana in G1, romaji in G0.
  EXPECT_EQ(to_utf8("\xD4\xCF\xC0\xDE^\xC0\xDB\xB3", "ISO_IR 13"), "ﾔﾏﾀﾞ^ﾀﾛｳ");
  EXPECT_EQ(to_utf8("\xD4\xCF\xC0\xDE^\xC0\xDB\xB3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J", "ISO 2022 IR 13\\ISO 2022 IR 87"),
            "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎");
}

TEST(Text, KoreanAndChinese) {
  // PS3.5 I.2: KS X 1001 in G1 by ESC $ ) C.
  EXPECT_EQ(to_utf8("Hong^Gildong=\x1b$)C\xC8\xAB^\x1b$)C\xB1\xE6\xB5\xBF", "\\ISO 2022 IR 149"),
            "Hong^Gildong=홍^길동");
  // Written without the escape sequence (common): the G1 set of the only term.
  EXPECT_EQ(to_utf8("\xC8\xAB", "ISO 2022 IR 149"), "홍");
  // PS3.5 J: GB18030 and GB 2312 (ESC $ ) A).
  EXPECT_EQ(to_utf8("Wang^XiaoDong=\xCD\xF5^\xD0\xA1\xB6\xAB=", "GB18030"), "Wang^XiaoDong=王^小东=");
  EXPECT_EQ(to_utf8("Wang^XiaoDong=\x1b$)A\xCD\xF5^\x1b$)A\xD0\xA1\xB6\xAB", "\\ISO 2022 IR 58"), "Wang^XiaoDong=王^小东");
  EXPECT_EQ(to_utf8("\xCD\xF5", "GBK"), "王");
}

TEST(Text, Iso2022SingleByteSetsSwitchByEscape) {
  EXPECT_EQ(to_utf8("J\x1b-A\xE9r\xF4me \x1b-L\xB6", "ISO 2022 IR 6\\ISO 2022 IR 100\\ISO 2022 IR 144"), "Jérôme Ж");
  EXPECT_TRUE(known_character_set("ISO 2022 IR 6\\ISO 2022 IR 100\\ISO 2022 IR 144"));
}

TEST(Text, Utf8IsKeptAndRepaired) {
  EXPECT_EQ(to_utf8("IRM cérébrale", "ISO_IR 192"), "IRM cérébrale");
  EXPECT_EQ(to_utf8("a\xC3(b", "ISO_IR 192"), "a" + kReplacement + "(b");
  EXPECT_EQ(to_utf8("\xED\xA0\x80", "ISO_IR 192"), kReplacement + kReplacement + kReplacement);  // a surrogate
  EXPECT_EQ(to_utf8("\xC0\xAF", "ISO_IR 192"), kReplacement + kReplacement);                    // overlong '/'
}

TEST(Text, UnknownOrUndeclaredNeverThrows) {
  EXPECT_FALSE(known_character_set("ISO_IR 999"));
  EXPECT_EQ(to_utf8("caf\xE9", "ISO_IR 999"), "caf" + kReplacement);
  EXPECT_EQ(to_utf8("caf\xE9", ""), "caf" + kReplacement);  // the default repertoire is ASCII
  EXPECT_EQ(to_utf8("café", ""), "café");                    // undeclared UTF-8 is kept
  EXPECT_EQ(to_utf8("a\x1bZb", "\\ISO 2022 IR 87"), "a" + kReplacement + "Zb");  // unknown escape
  EXPECT_EQ(to_utf8("\x1b$B;", "\\ISO 2022 IR 87"), kReplacement);  // half a kanji at the end
  // Every byte value, every set: always valid UTF-8.
  std::string all;
  for (int b = 1; b < 256; ++b) all += static_cast<char>(b);
  for (const char* cs : {"", "ISO_IR 100", "ISO_IR 13", "ISO_IR 192", "GB18030", "GBK", "\\ISO 2022 IR 87",
                         "\\ISO 2022 IR 149", "\\ISO 2022 IR 58", "\\ISO 2022 IR 159", "X"}) {
    const std::string u = to_utf8(all, cs);
    EXPECT_EQ(valid_utf8(u), u) << cs;
  }
}

}  // namespace
