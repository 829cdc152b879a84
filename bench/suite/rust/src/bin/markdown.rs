//! Markdown: renders a generated document (headings, lists, emphasis, links, code, tables)
//! to HTML with pulldown-cmark.
use wasmix_suite::*;

fn document(rng: &mut Rng, sections: usize) -> String {
    let mut md = String::new();
    for s in 0..sections {
        md.push_str(&format!("## Section {s}: {}\n\n", rng.word()));
        for _ in 0..3 {
            for _ in 0..40 {
                let w = rng.word();
                match rng.below(10) {
                    0 => md.push_str(&format!("*{w}* ")),
                    1 => md.push_str(&format!("**{w}** ")),
                    2 => md.push_str(&format!("[{w}](https://example.org/{w}) ")),
                    3 => md.push_str(&format!("`{w}` ")),
                    _ => md.push_str(&format!("{w} ")),
                }
            }
            md.push_str("\n\n");
        }
        for i in 0..5 {
            md.push_str(&format!("- item {i} {} {}\n", rng.word(), rng.word()));
        }
        md.push_str("\n```\nfn main() {}\n```\n\n| a | b |\n|---|---|\n");
        md.push_str(&format!("| {} | {} |\n\n> {}\n\n", rng.word(), rng.word(), rng.word()));
    }
    md
}

fn main() {
    let rounds = start();
    let mut rng = Rng::new(19);
    let md = document(&mut rng, 400);
    let mut h = FNV_START;
    let mut opts = pulldown_cmark::Options::empty();
    opts.insert(pulldown_cmark::Options::ENABLE_TABLES);
    for _ in 0..rounds {
        let mut html = String::new();
        pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new_ext(&md, opts));
        h = fnv(html.as_bytes(), h);
    }
    report("markdown", h);
}
