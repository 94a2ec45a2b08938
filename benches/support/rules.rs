//! Generated rules for the B5 benchmarks (checker throughput and editor
//! latency): realistic, all distinct, and clean against
//! `rules/declarations.stw`.

/// Generated rules `first..`, 18 lines each, until there are at least
/// `lines` lines.
#[allow(dead_code)] // Each bench uses one of the two entry points.
pub fn lines(lines: usize, first: usize) -> String {
    let mut out = String::new();
    let mut i = first;
    while out.lines().count() < lines {
        push_rule(&mut out, i);
        i += 1;
    }
    out
}

/// Generated rules until there are at least `bytes` bytes.
#[allow(dead_code)]
pub fn bytes(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 1024);
    let mut i = 0;
    while out.len() < bytes {
        push_rule(&mut out, i);
        i += 1;
    }
    out
}

fn push_rule(out: &mut String, i: usize) {
    out.push_str(&format!(
        "## Rule number {i}.\nrule r{i} \"Generated rule {i}\"\n  when reservation.created\n  throttle 1 per 24h by guest.email\n  if risk < 0.{d} and nights >= {n} and guest.country in [\"US\", \"CA\"] and channel != \"vrbo\"\n  then\n    let note = \"Booking {{id}} for {{nights}} nights\"\n    send welcome\n    if total > {n}00.0 then\n      notify role owner \"{{note}}: {{guest.first_name}}\"\n    end\n    at check_in - 2d unless reservation.cancelled on id do\n      create task \"Prepare listing {{listing_id}}\" for role cleaner due check_in - 1d\n    end\nend\n\nwhen reservation.created if guest.vip and total >= {n}.5 then log \"vip {{id}} {i}\"\n\n",
        d = i % 9 + 1,
        n = i % 7 + 1,
    ));
}
