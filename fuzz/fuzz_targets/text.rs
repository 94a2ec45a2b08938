//! Rule text: parse, check, format, and parse the formatted text again. No
//! input may panic, and formatting must keep the program's meaning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward::check::{analyze, NoFiles};
use steward::syntax::{format::format_source, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse(0, text);
    let _ = analyze(&[("fuzz.stw".to_string(), text.to_string())], &NoFiles);
    if let Ok(once) = format_source(text) {
        let twice = format_source(&once).expect("formatted text parses");
        assert_eq!(once, twice, "formatting is idempotent");
    }
});
