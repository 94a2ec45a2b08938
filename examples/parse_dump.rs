fn main() {
    for path in std::env::args().skip(1) {
        let src = std::fs::read_to_string(&path).unwrap();
        let (tree, diags) = steward::syntax::parse(0, &src);
        println!("== {path}: {} items", tree.items.len());
        for d in &diags {
            println!("  {} {:?} {}", d.code, d.primary.span, d.message);
        }
        if std::env::var("DUMP").is_ok() {
            println!("{tree:#?}");
        }
    }
}
