import SVCTraceCore
import Testing

@Suite struct TerminalTextTests {
  @Test func clearScreenAndColourSequencesAreShownNotSent() {
    #expect(TerminalText.sanitize("a\u{1B}[2Jb") == "a\\x1B[2Jb")
    #expect(TerminalText.sanitize("\u{1B}[31mred\u{1B}[0m") == "\\x1B[31mred\\x1B[0m")
  }

  @Test func osc52ClipboardWriteIsDefused() {
    let osc52 = "\u{1B}]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u{07}"
    let shown = TerminalText.sanitize(osc52)
    #expect(shown == "\\x1B]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\\x07")
    #expect(!shown.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
  }

  @Test func belCarriageReturnAndBackspaceOverwritesAreVisible() {
    #expect(TerminalText.sanitize("ok\u{07}") == "ok\\x07")
    #expect(TerminalText.sanitize("rm -rf /\rls") == "rm -rf /\\rls")
    #expect(TerminalText.sanitize("abc\u{08}\u{08}\u{08}xyz") == "abc\\x08\\x08\\x08xyz")
    #expect(TerminalText.sanitize("del\u{7F}") == "del\\x7F")
  }

  @Test func c1ControlsAndBidiOverridesAreEscaped() {
    // U+009B is the single-character CSI, U+202E reverses the text that follows.
    #expect(TerminalText.sanitize("x\u{9B}2Jy") == "x\\u{009B}2Jy")
    #expect(TerminalText.sanitize("file\u{202E}txt.sh") == "file\\u{202E}txt.sh")
  }

  @Test func newlinesTabsAndOrdinaryTextAreUntouched() {
    let text = "NAME\tREADY\nnginx-7d4\t1/1\nünïcødé ✓ 日本\n"
    #expect(TerminalText.sanitize(text) == text)
    #expect(TerminalText.sanitize(Array(text.utf8)) == text)
  }

  @Test func invalidUTF8BytesAreShownByteByByte() {
    // A stray continuation byte, a truncated 3-byte sequence, an overlong "/" and a raw ESC.
    let bytes: [UInt8] = [0x61, 0x80, 0x62, 0xE2, 0x82, 0x63, 0xC0, 0xAF, 0x1B, 0x5B, 0x32, 0x4A, 0xE2, 0x82, 0xAC]
    #expect(TerminalText.sanitize(bytes) == "a\\x80b\\xE2\\x82c\\xC0\\xAF\\x1B[2J€")
    // A lone surrogate encoded in UTF-8 (ED A0 80) is not well-formed either.
    #expect(TerminalText.sanitize([0xED, 0xA0, 0x80]) == "\\xED\\xA0\\x80")
    #expect(TerminalText.sanitize([0xF0, 0x9F, 0x98, 0x80]) == "😀")
    #expect(TerminalText.sanitize([UInt8]()) == "")
  }
}
