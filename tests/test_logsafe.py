from agentsight_otel.logsafe import MAX_LOGGED_CHARS, printable, scrub


def test_printable_escapes_line_breaks_and_controls() -> None:
    forged = "conv-1\n2026-11-28 ERROR forged line\r\x1b[31m"
    out = printable(forged)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out
    assert out == "conv-1\\x0a2026-11-28 ERROR forged line\\x0d\\x1b[31m"


def test_printable_keeps_printable_unicode_and_bounds_length() -> None:
    assert printable("カートに追加") == "カートに追加"
    long = "x" * (MAX_LOGGED_CHARS * 10)
    assert printable(long) == "x" * MAX_LOGGED_CHARS + "..."
    assert printable("\u2028") == "\\u2028"


def test_printable_survives_a_hostile_str() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert printable(Hostile()) == "<unprintable Hostile>"


def test_scrub_removes_the_secret_and_its_stripped_form() -> None:
    key = "sk-live-123456\n"
    message = "Invalid header value b'Bearer sk-live-123456\\n' and sk-live-123456"
    out = scrub(message, [key, None])
    assert "sk-live-123456" not in out
    assert out.count("[REDACTED]") == 2
