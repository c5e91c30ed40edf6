//! The blocklist feed parser: any text, no panic; every accepted network has no host bits, and
//! every rejected line is reported with a line number inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shield_user::import::parse_list;

fuzz_target!(|text: &str| {
    match parse_list(text) {
        Ok(nets) => {
            for n in nets {
                assert_eq!(n, n.trunc(), "{n} has host bits set");
            }
        }
        Err(errors) => {
            let lines = text.lines().count();
            assert!(!errors.is_empty());
            for e in errors {
                assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
            }
        }
    }
});
