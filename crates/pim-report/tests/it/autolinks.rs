//! Issue 9: GitHub turned UPNs and e-mail-like text in the Markdown report into live `mailto:`
//! links. The report is parsed here with comrak, a GitHub-flavoured CommonMark implementation,
//! with GitHub's extensions on, and no link may come out of untrusted text.
//!
//! comrak looks for e-mail autolinks before it joins the text around a backslash escape, but
//! GitHub (cmark-gfm) joins adjacent text first and then looks for e-mail addresses, and its
//! @mentions are found in the rendered text. So beyond comrak's own links, every text run of the
//! parsed document is checked the way GitHub sees it: no `@` directly followed by a name.

use comrak::nodes::{AstNode, NodeValue};
use comrak::{Arena, Options, parse_document};
use pim_report::{MarkdownOptions, Renderer};

use crate::hostile::hostile_report;

/// Everything GitHub might turn into a link or a mention.
const TRIGGERS: &[&str] = &[
    "jane.doe@contoso.com",
    "x\\@contoso.com",
    "mailto:mallory@evil.example",
    "xmpp:mallory@evil.example",
    "https://evil.example/login",
    "http://evil.example",
    "ftp://evil.example/x",
    "www.evil.example",
    "see www.evil.example/path now",
    "@everyone",
    "@contoso/security-team",
    "(www.evil.example)",
    "*www.evil.example*",
    "_mallory@evil.example_",
    "<mallory@evil.example>",
    "<https://evil.example>",
    "x&#64;contoso&#46;com",
    "[x](https://evil.example)",
];

fn gfm() -> Options<'static> {
    let mut options = Options::default();
    options.extension.autolink = true;
    options.extension.table = true;
    options.extension.strikethrough = true;
    options.extension.tasklist = true;
    options.extension.footnotes = true;
    options
}

fn links<'a>(root: &'a AstNode<'a>) -> Vec<String> {
    root.descendants()
        .filter_map(|n| match &n.data().value {
            NodeValue::Link(l) | NodeValue::Image(l) => Some(l.url.clone()),
            _ => None,
        })
        .collect()
}

/// Whether GitHub would make an e-mail link or a mention out of a run of plain text: it looks
/// for those in text joined across backslash escapes, so any `@` directly followed by a name
/// would do. (Web addresses and `www.` are found while parsing, as comrak does, so an escape
/// stops them and comrak's own links cover them.)
fn github_links_text(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(2)
        .position(|w| w[0] == '@' && (w[1].is_alphanumeric() || matches!(w[1], '-' | '_' | '.')))
        .map(|i| format!("`@` followed by a name at {i}"))
}

/// Every way the rendered Markdown could hold a link from untrusted text; empty when none.
fn live_links(markdown: &str) -> Vec<String> {
    let arena = Arena::new();
    let root = parse_document(&arena, markdown, &gfm());
    // The templates themselves write no link, so any link at all came from the data.
    let mut problems: Vec<String> = links(root)
        .into_iter()
        .map(|url| format!("link node to {url}"))
        .collect();
    for node in root.descendants() {
        match &node.data().value {
            NodeValue::Text(text) => {
                if let Some(why) = github_links_text(text) {
                    problems.push(format!("text {text:?}: {why}"));
                }
            }
            NodeValue::HtmlInline(html) if html != pim_report::escape::WORD_BREAK => {
                problems.push(format!("inline HTML {html:?}"));
            }
            NodeValue::HtmlBlock(block) => problems.push(format!("HTML block {:?}", block.literal)),
            _ => {}
        }
    }
    let mut html = String::new();
    if comrak::format_html(root, &gfm(), &mut html).is_err() || html.contains("<a ") {
        problems.push("rendered HTML holds an anchor".to_owned());
    }
    problems
}

fn render(text: &str) -> String {
    Renderer::new()
        .unwrap()
        .render_markdown(&hostile_report(text), &MarkdownOptions::default())
        .unwrap()
}

#[test]
fn no_upn_justification_or_log_text_becomes_a_link() {
    for trigger in TRIGGERS {
        // Alone, and inside ordinary text, in every field of the report.
        for text in [(*trigger).to_owned(), format!("by {trigger}, see INC1")] {
            let md = render(&text);
            let problems = live_links(&md);
            assert!(problems.is_empty(), "{trigger:?}: {problems:#?}");
            // The text is still there to read: the `@` and the address around it survive.
            if let Some((local, _)) = trigger.split_once('@')
                && !local.is_empty()
                && !local.contains(['<', '_', '&', '\\'])
            {
                assert!(md.contains(local), "{trigger:?}");
            }
        }
    }
    let all = TRIGGERS.join(" ");
    assert_eq!(live_links(&render(&all)), Vec::<String>::new());
}

#[test]
fn the_checker_sees_what_github_links() {
    // Without the word break GitHub links an escaped address; the check must say so.
    assert!(!live_links(r"by x\@contoso.com").is_empty());
    assert!(!live_links(r"ping \@everyone").is_empty());
    assert!(!live_links("see https://evil.example").is_empty());
    assert!(!live_links("see www.evil.example").is_empty());
    assert!(!live_links("<b>x</b>").is_empty());
    // What the report writes is plain text on GitHub.
    assert!(live_links(r"by x\@<wbr>contoso.com, http\://evil, www\.evil.example").is_empty());
}

#[test]
fn the_rendered_text_is_unchanged_by_the_word_break() {
    let arena = Arena::new();
    let root = parse_document(&arena, &render("jane.doe@contoso.com"), &gfm());
    let mut html = String::new();
    comrak::format_html(root, &gfm(), &mut html).unwrap();
    // comrak leaves out raw HTML by default, as GitHub drops `<wbr>` from what it shows.
    let shown = html.replace("<!-- raw HTML omitted -->", "");
    assert!(shown.contains("jane.doe@contoso.com"), "{html}");
}
