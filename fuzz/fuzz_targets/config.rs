//! The configuration parser and validator: any text, no panic; whatever passes validation can
//! be shown and validates again to the same policies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shield_user::config::Config;

fuzz_target!(|text: &str| {
    if let Ok(parsed) = Config::parse(text, "fuzz.toml")
        && let Ok(checked) = parsed.validate("fuzz.toml")
    {
        let again = Config::parse(&checked.to_toml(), "shown.toml")
            .and_then(|c| c.validate("shown.toml"))
            .expect("a valid configuration, shown, validates again");
        assert_eq!(again.policies, checked.policies);
    }
});
